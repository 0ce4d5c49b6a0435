"""Fifty clients that read slowly cost bounded memory and no temp-file disk.

What a client has not read yet is queued per connection as the chunks the stream wrote
(service/server/outbuf.py), sent from where they lie, and the app thread blocks once more than
``outbuf_high_watermark`` is unsent. That bounds one slow client at the high watermark plus a
few chunks in RAM (the one written when the queue was just under the mark, waitress's framed
copy of it, the chunker's next one being filled), plus what its stream holds besides (the
worker thread's touched stack, the template's and the source's state: ``STREAM_STATE``), and
nothing on disk. (With waitress's own
buffers it was up to two watermarks of temp file and a BytesIO stage in RAM per client, plus a
copy per send attempt.) RSS alone would never show a disk part, so the test measures both.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from tablestream.testing import httpraw, temp_file_bytes
from tablestream.testing.metricsread import value

MIB = 1024 * 1024
READERS = 50
HIGH_WATERMARK = 2 * MIB
OVERFLOW = 1 * MIB  # waitress's BytesIO stage; the chunk queue never uses it
CHUNK = 32 * 1024
# A stream's own state besides its queued output: measured 0.6-0.7 MiB per reader in all at a
# 2 MiB watermark (RSS +134 to +140 MiB for 50), of which the watermark and chunks are 2.1.
STREAM_STATE = 512 * 1024


def _slow_reader(port: int, stop: threading.Event, received: list[int], i: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.sendall(b"GET /tables/synthetic?limit=1000000 HTTP/1.1\r\nHost: t\r\n\r\n")
        while not stop.is_set():
            data = sock.recv(16 * 1024)
            if not data:
                break
            received[i] += len(data)
            stop.wait(0.2)  # 80 KiB/s: the server produces much faster than this


@pytest.mark.slow
def test_fifty_slow_readers_hold_bounded_memory_and_temp_file_disk(process_server, settings_for):
    env = {f"TABLESTREAM_{k.upper()}": v for k, v in settings_for().items()}
    env.update(
        TABLESTREAM_THREADS=str(READERS + 4),
        TABLESTREAM_CONNECTION_LIMIT=str(READERS + 50),
        TABLESTREAM_OUTBUF_HIGH_WATERMARK=str(HIGH_WATERMARK),
        TABLESTREAM_OUTBUF_OVERFLOW=str(OVERFLOW),
        TABLESTREAM_WRITE_TIMEOUT="120",
        # Memory per slow reader is measured here, so all 50 must run: admission by slots only
        # (the load-based ramp would refuse part of a burst of 50; tests/test_admission_lag.py).
        TABLESTREAM_ADMIT_MAX_LAG_MS="0",
    )
    server = process_server(**env)
    httpraw.get(f"{server.url}/tables/synthetic?limit=20000", keep=False)
    idle_rss = server.rss()
    stop = threading.Event()
    received = [0] * READERS
    readers = [
        threading.Thread(target=_slow_reader, args=(server.port, stop, received, i), daemon=True)
        for i in range(READERS)
    ]
    for reader in readers:
        reader.start()
    peak_rss = peak_disk = 0
    in_flight = 0.0
    deadline = time.monotonic() + 12
    while time.monotonic() < deadline:
        peak_rss = max(peak_rss, server.rss() - idle_rss)
        peak_disk = max(peak_disk, temp_file_bytes(server.pid))
        time.sleep(0.25)
    in_flight = value(f"{server.url}/metrics", "tablestream_streams_in_progress")
    stop.set()
    for reader in readers:
        reader.join(timeout=30)
    print(
        f"\n{READERS} slow readers for 12 s: RSS peak +{peak_rss / MIB:.1f} MiB over idle "
        f"{idle_rss / MIB:.1f} MiB, temp files peak {peak_disk / MIB:.1f} MiB, "
        f"received {sum(received) / MIB:.1f} MiB in all"
    )
    assert in_flight == READERS, "every slow reader must have been streaming at once"
    # The bound from the docstring, per slow client; and for the whole process 32 MiB for 54
    # threads' stacks, rows being rendered and the allocator.
    assert peak_disk == 0
    assert peak_rss <= READERS * (HIGH_WATERMARK + 4 * CHUNK + STREAM_STATE) + 32 * MIB
    assert all(r > 0 for r in received)
    # After the readers hang up, every stream ends and the buffers are gone.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and temp_file_bytes(server.pid):
        time.sleep(0.2)
    assert temp_file_bytes(server.pid) == 0
    final = httpraw.get(f"{server.url}/tables/synthetic?limit=10")
    assert final.terminated and b'data-rows-sent="10"' in final.tail
