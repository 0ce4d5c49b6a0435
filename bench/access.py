"""What access control costs: the token check per request, and a stream with a token vs without.

Three figures, each with a verdict (the targets of the access-control issue):

1. The check itself: ``Access.identify`` for a valid ``Authorization: Bearer`` token, with 1 and
   with 1,000 tokens in the file (every stored hash is compared, so it grows with the file):
   median microseconds per call. Target ≤ 200 µs (0.2 ms) per request.
2. A small page (``?limit=10``) over one kept-alive connection, open server vs tokens server,
   rounds alternated: the median latency difference per request (HTTP noise included).
3. A 1M-row stream with a token vs an open server, rounds alternated: rows/s ratio. Target:
   unchanged within noise (≥ 0.95).

``python -m bench.access [--rows N] [--rounds K]``; exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tablestream import create_app
from tablestream.access.gate import Access
from tablestream.access.tokens import add_token, hash_token
from tablestream.config import Settings
from tablestream.testing import ServerProcess

from .measure import fetch
from .run import server_env

CHECK_TARGET_US = 200.0
STREAM_TARGET = 0.95


def _check_cost(tokens_file: Path, token: str, calls: int = 20_000) -> float:
    settings = Settings.from_mapping({"db": "", "tokens_file": str(tokens_file)})
    access: Access = create_app(settings).extensions["tablestream"].access
    environ = {"REMOTE_ADDR": "127.0.0.1", "HTTP_AUTHORIZATION": f"Bearer {token}"}
    times = []
    for _ in range(calls):
        started = time.perf_counter_ns()
        access.identify(environ)
        times.append(time.perf_counter_ns() - started)
    return statistics.median(times) / 1000


def _small_page_ms(url: str, headers: dict[str, str], requests: int = 300) -> float:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        conn.request("GET", "/tables/synthetic?limit=10", headers=headers)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"small page answered {response.status}")
        times.append(time.perf_counter() - started)
    conn.close()
    return statistics.median(times) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.access", description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        one = work / "one.toml"
        token = add_token(str(one), "bench", tables=["*"])
        many = work / "many.toml"
        many.write_text(
            "".join(
                f'[[token]]\nname = "filler-{i}"\nsha256 = "{hash_token(f"filler-{i}").hex()}"\n'
                'tables = ["orders"]\n\n'
                for i in range(999)
            )
        )
        many_token = add_token(str(many), "bench", tables=["*"])
        for label, path, tok in (("1 token", one, token), ("1,000 tokens", many, many_token)):
            cost = _check_cost(path, tok)
            verdict = "PASS" if cost <= CHECK_TARGET_US else "FAIL"
            ok &= verdict == "PASS"
            print(
                f"token check, {label} in the file: {cost:.1f} µs median per request "
                f"(target ≤ {CHECK_TARGET_US:.0f} µs) {verdict}"
            )

        env = server_env(args.rows)
        open_server = ServerProcess(env, work / "open.log")
        secured = ServerProcess({**env, "TABLESTREAM_TOKENS_FILE": str(one)}, work / "tok.log")
        auth = {"Authorization": f"Bearer {token}"}
        try:
            diffs, ratios = [], []
            for _ in range(args.rounds):
                plain_ms = _small_page_ms(open_server.url, {})
                token_ms = _small_page_ms(secured.url, auth)
                diffs.append(token_ms - plain_ms)
                url = f"/tables/synthetic?limit={args.rows}"
                plain = fetch(open_server.url + url)
                with_token = fetch(secured.url + url, headers=(f"Authorization: Bearer {token}",))
                ratios.append(plain.seconds / with_token.seconds)
                print(
                    f"  round: small page {plain_ms:.2f} → {token_ms:.2f} ms; "
                    f"{args.rows:,} rows {args.rows / plain.seconds:,.0f} → "
                    f"{args.rows / with_token.seconds:,.0f} rows/s"
                )
        finally:
            open_server.stop()
            secured.stop()
    diff = statistics.median(diffs)
    print(
        f"small page with a token: {diff:+.3f} ms median per request vs open "
        "(HTTP noise included; the check itself is the figure above)"
    )
    ratio = statistics.median(ratios)
    verdict = "PASS" if ratio >= STREAM_TARGET else "FAIL"
    ok &= verdict == "PASS"
    print(
        f"stream with a token: {ratio:.3f}x the open server's rows/s "
        f"(target ≥ {STREAM_TARGET}) {verdict}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
