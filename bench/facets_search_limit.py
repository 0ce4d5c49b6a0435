"""Issue 32's targets, measured as the issue writes them: search, facets and the time limit.

``bench/queries.py`` runs these after its own targets (1-3) and prints one verdict line each:

4. ``orders?_search=…`` first byte ≤ 50 ms in HTML, CSV and NDJSON, and the same for the keyset
   page a reader reaches next: the ``_after`` of the first 1,000-row page's "next rows" link
   (``<a rel="next">``, the token the service signed for that query), asked in each format.
   SQLite's FTS5 index, then PostgreSQL's GIN index when it answers at ``BENCH_PG_DSN``.
5. The page with ``_facet=`` (its counts are a separate request): first byte within 20 ms of
   the same page without.
6. A facet over an unindexed column (``_facet=total``): ``timed_out`` within
   ``TABLESTREAM_FACET_TIME_LIMIT_MS`` + 50 ms, and the table streams after it; on the 10M-row
   table the issue names, while that table streams: ``bench/big_facets.py``.
7. A query over ``TABLESTREAM_QUERY_TIME_LIMIT_MS`` (``_sort=total&offset=…``): its 503 within
   the limit + 100 ms; 20 in a row leave ``/healthz`` p99 ≤ 100 ms (probed throughout), the
   streams in progress where they were, and the database file unchanged (SHA-256). The issue's
   own example, ``_sort=product&offset=…``, is timed beside it for information: it once
   finished inside the second on this machine, so it cannot be the verdict's query.
"""

from __future__ import annotations

import hashlib
import html
import re
import secrets
import statistics
import threading
import time
from pathlib import Path
from urllib.parse import quote

from tablestream.sources.demo import create_demo_pg
from tablestream.testing import ServerProcess, httpraw, metricsread

from .data import PG_DSN
from .measure import fetch

__all__ = [
    "facets_search_limit",
    "keyset_urls",
    "pg_search",
    "streams_in_progress",
    "time_limit",
    "timed",
]

FACET_LIMIT_MS = 200  # the defaults of TABLESTREAM_FACET_TIME_LIMIT_MS and _QUERY_TIME_LIMIT_MS
QUERY_LIMIT_MS = 1000
PAGE = 1000  # the first page's rows, whose "next rows" link gives the keyset page
SEARCHES = ("gift", "fragile heavy", "widget OR rush", "spr*")  # FTS5's syntax
# Words in a tenth to a fifth of the rows, a phrase of two common words (a tenth), two words
# together in an eightieth, and a word in no row.
PG_SEARCHES = ("gift", '"fragile heavy"', "widget or rush", "sprocket -gift", "doohickey fragile",
               "zebra")  # fmt: skip
FORMATS = (("page", ""), ("CSV", ".csv"), ("NDJSON", ".ndjson"))
_NEXT = re.compile(r'<a rel="next" href="([^"]+)"')


def _verdict(passed: bool, line: str) -> bool:
    print(f"{line} {'PASS' if passed else 'FAIL'}", flush=True)
    return passed


def _ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def timed(url: str) -> tuple[float, httpraw.RawResponse]:
    started = time.perf_counter()
    answer = httpraw.get(url, timeout=60)
    return time.perf_counter() - started, answer


def streams_in_progress(url: str) -> float:
    samples = metricsread.samples(url + "/metrics")
    return sum(v for name, _, v in samples if name == "tablestream_streams_in_progress")


def keyset_urls(base: str, query: str) -> dict[str, str] | None:
    """The keyset page after the first ``PAGE`` rows of ``base?query``, in each format.

    The ``_after`` is the one the service wrote into the first page's "next rows" link, so the
    page measured is the one a reader reaches; None when the first page has no such link (every
    match fitted on it)."""
    first = httpraw.get(f"{base}?{query}&limit={PAGE}", timeout=60)
    if first.status != 200:
        raise RuntimeError(f"{base}?{query}&limit={PAGE} answered {first.status}")
    found = _NEXT.search(first.text)
    if found is None:
        return None
    path, _, next_query = html.unescape(found.group(1)).partition("?")
    origin = base[: base.index("/", len("http://"))]
    return {name: f"{origin}{path}{ext}?{next_query}" for name, ext in FORMATS}


def _searches(base: str, rounds: int, label: str, searches: tuple[str, ...]) -> bool:
    ok = True
    for words in searches:
        q = f"_search={quote(words)}"
        try:
            firsts = {n: _ms([fetch(f"{base}{e}?{q}").ttfb for _ in range(rounds * 3)])
                      for n, e in FORMATS}  # fmt: skip
            pages = keyset_urls(base, q)
            nexts = {n: _ms([fetch(u).ttfb for _ in range(rounds * 3)])
                     for n, u in (pages or {}).items()}  # fmt: skip
        except RuntimeError as exc:  # not a 200: the time limit's 503, say
            ok &= _verdict(False, f"{label}orders?_search={words}: {exc}")
            continue
        shown = ", ".join(f"{v:.1f} ms {n}" for n, v in firsts.items())
        ok &= _verdict(
            max(firsts.values()) <= 50,
            f"{label}orders?_search={words}: first byte {shown} (medians; target ≤ 50 ms)",
        )
        if not nexts:
            print(f"{label}orders?_search={words}&limit={PAGE}: no next link (every match on it)")
            continue
        shown = ", ".join(f"{v:.1f} ms {n}" for n, v in nexts.items())
        ok &= _verdict(
            max(nexts.values()) <= 50,
            f"{label}orders?_search={words}, the keyset page after the first {PAGE:,} rows "
            f"(_after of its next link): first byte {shown} (medians; target ≤ 50 ms)",
        )
    return ok


def pg_search(work: Path, rows: int, rounds: int) -> bool:
    """Target 4 on PostgreSQL: the demo orders and their GIN index in a scratch schema."""
    import psycopg

    try:
        admin = psycopg.connect(PG_DSN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        print(f"PostgreSQL _search: skipped, nothing answers at {PG_DSN!r}: {exc}")
        return True
    schema = f"bench_search_{secrets.token_hex(3)}"
    admin.execute(f"CREATE SCHEMA {schema}")
    try:
        create_demo_pg(f"{PG_DSN} options='-csearch_path={schema}'", rows)
        admin.execute(f"ANALYZE {schema}.orders")
        env = {
            "TABLESTREAM_DB": "",
            "TABLESTREAM_SYNTHETIC_ROWS": "0",
            "TABLESTREAM_LOG_LEVEL": "warning",
            "TABLESTREAM_PG_DSN": PG_DSN,
            "TABLESTREAM_PG_TABLES": f"{schema}.orders",
        }
        server = ServerProcess(env, work / "pg.log")
        try:
            fetch(server.url + "/tables/orders.csv?limit=1000")  # warm the pool and the cache
            return _searches(server.url + "/tables/orders", rounds, "PostgreSQL ", PG_SEARCHES)
        finally:
            server.stop()
    finally:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()


def facets_search_limit(server: ServerProcess, db: Path, rows: int, rounds: int) -> bool:
    """Targets 4-7 on the SQLite demo of ``rows`` orders served by ``server``."""
    ok = True
    base = server.url + "/tables/orders"
    ok &= _searches(base, rounds, "", SEARCHES)
    ranked = _ms([fetch(f"{base}?_search=gift&_sort=total&limit=100").ttfb for _ in range(rounds)])
    print(f"orders?_search=gift&_sort=total&limit=100: first byte {ranked:.1f} ms (for comparison)")

    plain, faceted = [], []
    for _ in range(rounds * 3):
        plain.append(fetch(base + "?limit=1000").ttfb)
        faceted.append(fetch(base + "?limit=1000&_facet=status&_facet=product").ttfb)
    counts = _ms([fetch(base + "/facets.json?_facet=status&_facet=product").seconds
                  for _ in range(rounds)])  # fmt: skip
    p, f = _ms(plain), _ms(faceted)
    ok &= _verdict(
        f - p <= 20,
        f"page with _facet=status&_facet=product: first byte {f:.1f} ms vs {p:.1f} ms without "
        f"(target within 20 ms; the counts themselves: facets.json in {counts:.1f} ms)",
    )

    took, timed_out = [], True
    for _ in range(rounds * 3):
        seconds, answer = timed(base + "/facets.json?_facet=total")
        took.append(seconds)
        timed_out &= answer.status == 200 and '"timed_out": true' in answer.text
    two = max(timed(base + "/facets.json?_facet=total&_facet=note")[0] for _ in range(rounds))
    streams = httpraw.get(base + ".csv?limit=100000", timeout=60)
    streamed = streams.status == 200 and streams.text.count("\r\n") == 100_001
    t = max(took) * 1000
    ok &= _verdict(
        timed_out and streamed and t <= FACET_LIMIT_MS + 50,
        f"facets.json?_facet=total over {rows:,} rows (no index): timed_out {timed_out}, slowest "
        f"of {len(took)} {t:.0f} ms (target ≤ {FACET_LIMIT_MS} + 50; two such facets "
        f"{two * 1000:.0f} ms, one limit each), the table still streams: {streamed}",
    )
    return time_limit(server, db, rows) and ok


def time_limit(server: ServerProcess, db: Path, rows: int) -> bool:
    """Target 7: 20 queries over the limit, /healthz probed meanwhile; the issue's example."""
    base = server.url + "/tables/orders"
    deep = max(0, rows - 10)
    example, answer = timed(f"{base}?_sort=product&offset={deep}&limit=5")
    print(
        f"orders?_sort=product&offset={deep:,}&limit=5 (the issue's example): answered "
        f"{answer.status} in {example * 1000:.0f} ms (for information)"
    )
    # Well over the limit (SQLite's top-N sort of every row: seconds at 1M), so that each of
    # the 20 is refused whatever the machine's load (_sort=product took 0.7-2.7 s).
    slow = f"{base}?_sort=total&offset={deep}&limit=5"
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    before = streams_in_progress(server.url)
    probes: list[float] = []
    done = threading.Event()

    def probe() -> None:
        while not done.is_set() and len(probes) < 10_000:
            started = time.perf_counter()
            httpraw.get(server.url + "/healthz", timeout=10)
            probes.append(time.perf_counter() - started)
            time.sleep(0.02)

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        answers = [timed(slow) for _ in range(20)]
    finally:
        done.set()
        prober.join()
    longest = max(seconds for seconds, _ in answers) * 1000
    middle = statistics.median(seconds for seconds, _ in answers) * 1000
    refusals = sum(a.status == 503 and "took too long" in a.text for _, a in answers)
    refused = refusals == len(answers)
    p99 = statistics.quantiles(probes, n=100)[98] * 1000 if len(probes) >= 2 else float("inf")
    after = streams_in_progress(server.url)
    same_file = hashlib.sha256(db.read_bytes()).hexdigest() == digest
    return _verdict(
        refused
        and longest <= QUERY_LIMIT_MS + 100
        and p99 <= 100
        and after == before
        and same_file,
        f"20 x orders?_sort=total&offset={deep:,}: {refusals} 503s, slowest in "
        f"{longest:.0f} ms, median {middle:.0f} ms "
        f"(target ≤ {QUERY_LIMIT_MS} + 100), /healthz p99 {p99:.1f} ms over {len(probes)} "
        f"probes (≤ 100), streams in progress {before:.0f} → {after:.0f}, file unchanged "
        f"{same_file}",
    )
