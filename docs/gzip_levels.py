"""Why TABLESTREAM_GZIP_LEVEL defaults to 1, on ISA-L: size and speed of each compressor.

Renders 100,000 rows of the synthetic table (about 13.8 MB of HTML) in process, cuts it into
32 KiB chunks and compresses them as the service does (gzip framing, Z_SYNC_FLUSH after every
chunk), best of three runs per level, with zlib and with ISA-L (``isal_zlib``, when installed).
Prints one line per compressor and level; figures go in docs/formats.md.

    python docs/gzip_levels.py [--rows N] [--levels 1,2,3,6,9]
"""

from __future__ import annotations

import argparse
import os
import time
import zlib

os.environ.setdefault("TABLESTREAM_DB", "")  # the synthetic table alone; no demo file needed

from tablestream import create_app

CHUNK = 32 * 1024
RUNS = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--levels", default="1,2,3,6,9")
    args = parser.parse_args()
    body = create_app().test_client().get(f"/tables/synthetic?limit={args.rows}").get_data()
    chunks = [body[i : i + CHUNK] for i in range(0, len(body), CHUNK)]
    print(f"{len(body) / 1e6:.1f} MB of HTML, {len(chunks)} chunks of {CHUNK // 1024} KiB")
    try:
        from isal import isal_zlib
    except ImportError:
        isal_zlib = None
    levels = [int(v) for v in args.levels.split(",")]
    for name, module in (("zlib", zlib), ("isal", isal_zlib)):
        if module is None:
            print("isal: not installed")
            continue
        for level in levels if module is zlib else [v for v in levels if v <= 3]:
            best, sent = float("inf"), 0
            for _ in range(RUNS):
                compressor = module.compressobj(level, module.DEFLATED, 31)
                started = time.perf_counter()
                flush = module.Z_SYNC_FLUSH
                sent = sum(len(compressor.compress(c) + compressor.flush(flush)) for c in chunks)
                sent += len(compressor.flush())
                best = min(best, time.perf_counter() - started)
            ratio, speed = len(body) / sent, len(body) / best / 1e6
            print(f"{name} level {level}: {ratio:.2f}x smaller, {speed:.0f} MB/s of one core")


if __name__ == "__main__":
    main()
