"""A connection's unsent output is sent from the chunks it was written in, never copied.

service/server/outbuf.py's ``ChunkQueue`` replaces waitress's BytesIO/temp-file buffer for
every connection: ``get`` hands out slices of the written bytes, ``skip`` moves past what the
kernel took, across chunk boundaries. (A real server's slow readers: tests/test_slow_readers.py.)
"""

from __future__ import annotations

import pytest

from tablestream.server.outbuf import ChunkQueue


def _drain(queue: ChunkQueue, take: int) -> bytes:
    """What a socket taking at most ``take`` bytes per send() would receive."""
    out = bytearray()
    while queue:
        piece = queue.get(1 << 20)
        sent = bytes(piece[:take])
        queue.skip(len(sent), True)
        out += sent
    return bytes(out)


def test_get_is_a_view_of_the_written_chunk_not_a_copy():
    chunk = b"x" * 40_000
    queue = ChunkQueue()
    queue.append(chunk)
    view = queue.get(16_384)
    assert isinstance(view, memoryview) and view.obj is chunk
    assert len(view) == 16_384 and len(queue) == 40_000  # get alone consumes nothing


def test_partial_sends_across_chunk_boundaries_deliver_every_byte_once_in_order():
    chunks = [bytes([i]) * size for i, size in enumerate((5, 70_000, 1, 32_768, 999))]
    queue = ChunkQueue()
    for chunk in chunks:
        queue.append(chunk)
    assert len(queue) == sum(map(len, chunks))
    assert _drain(queue, take=4_097) == b"".join(chunks)
    assert len(queue) == 0 and not queue and queue.get(100) == b""


def test_skipping_more_than_is_queued_is_an_error_and_close_empties_the_queue():
    queue = ChunkQueue()
    queue.append(b"abc")
    with pytest.raises(ValueError, match="cannot skip 4 bytes of 3"):
        queue.skip(4)
    queue.append(b"def")
    queue.close()
    assert len(queue) == 0 and queue.get() == b""


def test_a_mutable_buffer_is_kept_as_bytes_so_later_changes_do_not_leak_out():
    data = bytearray(b"row 1\n")
    queue = ChunkQueue()
    queue.append(data)
    data[:] = b"XXXXXX"
    assert bytes(queue.get()) == b"row 1\n"
