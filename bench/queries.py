"""What queries cost on a 1M-row demo database: filters, a sort, and deep pages by key vs offset.

The targets of the queries issue, each with a verdict:

1. ``orders?customer_id=42`` (index ``orders_customer_id``): time to first byte ≤ 20 ms.
2. ``orders.csv?_sort_desc=total`` over every row (no index: SQLite sorts, spilling to its temp
   files): rows/s ≥ 0.5x the unsorted stream's, and the server's peak RSS ≤ 8 MiB above idle.
3. A page of 1,000 rows ``_after`` row 900,000: TTFB ≤ 2x the first page's; ``offset=900000``
   measured beside it.

And issue 32's (facets, search, the time limit), measured in ``bench/facets_search_limit.py``
and, for the 10M-row table the facet target names, ``bench/big_facets.py``:

4. ``orders?_search=…`` first byte ≤ 50 ms in HTML, CSV and NDJSON, first page and the keyset
   page after it (the ``_after`` of its "next rows" link), SQLite FTS5 and PostgreSQL GIN.
5. The page with ``_facet=``: first byte within 20 ms of the same page without.
6. ``facets.json?_facet=total`` (no index): ``timed_out`` within the facet limit + 50 ms, on the
   1M-row table and on a 10M-row one while a full-speed stream of that table runs.
7. 20 queries over the query time limit: each a 503 within the limit + 100 ms; ``/healthz``,
   the streams in progress and the file unchanged.

``python -m bench.queries [--rows N] [--rounds K] [--big-rows N] [--limit-only]``; exits 1 when
a target is missed. Medians of K rounds, the compared variants alternated within each round.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from tablestream.config.secretfile import read_secrets, write_secret
from tablestream.query import Query
from tablestream.query.keyset import Keysets, query_scope
from tablestream.sources.demo import create_demo_db
from tablestream.testing import ServerProcess

from .big_facets import big_facets, big_facets_verdict, big_table
from .facets_search_limit import facets_search_limit, pg_search, time_limit
from .measure import fetch

MIB = 1024 * 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.queries", description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--big-rows",
        type=int,
        default=10_000_000,
        help="rows of the table target 6 asks a facet of while it streams (0: skip that phase)",
    )
    parser.add_argument(
        "--limit-only",
        action="store_true",
        help="only target 7, the time limit, on SQLite (the line that depends on the load)",
    )
    args = parser.parse_args(argv)
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        db = create_demo_db(work / "demo.sqlite3", rows=args.rows)
        # The server's secret, so this bench can sign the _after a page's link would carry.
        secret_file = str(work / "secret")
        write_secret(secret_file)
        keysets = Keysets(read_secrets(secret_file))
        env = {
            "TABLESTREAM_DB": str(db),
            "TABLESTREAM_LOG_LEVEL": "warning",
            "TABLESTREAM_SECRET_FILE": secret_file,
        }
        # The whole-table sort below takes seconds to its first row: no time limit here (7.
        # measures the limit, on a server of its own with the defaults).
        if args.limit_only:
            server = ServerProcess(env, work / "limits.log")
            try:
                return 0 if time_limit(server, db, args.rows) else 1
            finally:
                server.stop()
        server = ServerProcess({**env, "TABLESTREAM_QUERY_TIME_LIMIT_MS": "0"}, work / "server.log")
        try:
            base = server.url + "/tables/orders"
            fetch(base + ".csv?limit=1000")  # warm the page cache and the process
            ttfb = [fetch(base + "?customer_id=42").ttfb for _ in range(args.rounds * 3)]
            first = statistics.median(ttfb) * 1000
            verdict = "PASS" if first <= 20 else "FAIL"
            ok &= verdict == "PASS"
            print(
                f"orders?customer_id=42: first byte {first:.1f} ms median (target ≤ 20 ms) {verdict}"
            )

            deep = max(0, args.rows - args.rows // 10)
            after = keysets.sign(query_scope("orders", "id", Query()), [str(deep)])
            firsts, afters, offsets = [], [], []
            for _ in range(args.rounds):
                firsts.append(fetch(base + "?limit=1000").ttfb)
                afters.append(fetch(base + f"?limit=1000&_after={after}").ttfb)
                offsets.append(fetch(base + f"?limit=1000&offset={deep}").ttfb)
            f, a, o = (statistics.median(x) * 1000 for x in (firsts, afters, offsets))
            verdict = "PASS" if a <= 2 * f else "FAIL"
            ok &= verdict == "PASS"
            print(
                f"1,000 rows after row {deep:,}: _after {a:.1f} ms, offset {o:.1f} ms, first page "
                f"{f:.1f} ms (first byte, medians; target _after ≤ 2x first) {verdict}"
            )

            plain_rates, sorted_rates, peaks = [], [], []
            server.settle()
            idle = server.rss()
            for _ in range(args.rounds):
                plain = fetch(base + ".csv")
                server.reset_peak()
                ordered = fetch(base + ".csv?_sort_desc=total")
                peaks.append(server.peak() - idle)
                plain_rates.append(args.rows / plain.seconds)
                sorted_rates.append(args.rows / ordered.seconds)
            p, s = statistics.median(plain_rates), statistics.median(sorted_rates)
            peak = statistics.median(peaks) / MIB
            verdict = "PASS" if s >= 0.5 * p and peak <= 8 else "FAIL"
            ok &= verdict == "PASS"
            print(
                f"_sort_desc=total over {args.rows:,} rows: {s:,.0f} rows/s vs {p:,.0f} unsorted "
                f"({s / p:.2f}x; target ≥ 0.5x), peak RSS +{peak:.1f} MiB over idle "
                f"{idle / MIB:.1f} (target ≤ 8) {verdict}"
            )
        finally:
            server.stop()
        server = ServerProcess(env, work / "limits.log")
        try:
            ok &= facets_search_limit(server, db, args.rows, args.rounds)
        finally:
            server.stop()
        ok &= pg_search(work, args.rows, args.rounds)
        if args.big_rows:
            big = big_facets(big_table(args.big_rows), args.big_rows, args.rounds * 3,
                             work / "big.log")  # fmt: skip
            passed, line = big_facets_verdict(big)
            print(f"{line} {'PASS' if passed else 'FAIL'}", flush=True)
            ok &= passed
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
