"""A connection's unsent output is sent from the chunks it was written in, never copied.

service/server/outbuf.py's ``ChunkQueue`` replaces waitress's BytesIO/temp-file buffer for
every connection: ``get`` hands out slices of the written bytes, ``skip`` moves past what the
kernel took, across chunk boundaries; a flush offers several chunks to one ``sendmsg``. (A real
server's slow readers: tests/test_slow_readers.py.)
"""

from __future__ import annotations

import errno

import pytest

from tablestream.server.outbuf import ChannelOutput, ChunkQueue


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


def test_views_cover_several_chunks_from_the_current_offset_up_to_the_limit():
    queue = ChunkQueue()
    for chunk in (b"a" * 10, b"b" * 20, b"c" * 30):
        queue.append(chunk)
    queue.skip(4)
    views = queue.views(40)
    assert [bytes(v) for v in views] == [b"a" * 6, b"b" * 20, b"c" * 14]
    assert all(isinstance(v, memoryview) for v in views) and len(queue) == 56


class _CountingSocket:
    """A socket whose ``sendmsg`` calls are counted and that takes at most ``room`` bytes."""

    def __init__(self, room: int) -> None:
        self.room, self.calls, self.received = room, 0, bytearray()

    def sendmsg(self, views: list[memoryview]) -> int:
        self.calls += 1
        if not self.room:
            raise BlockingIOError(errno.EAGAIN, "full")
        data = b"".join(views)[: self.room]
        self.room -= len(data)
        self.received += data
        return len(data)


class _Channel(ChannelOutput):
    def __init__(self, sock: _CountingSocket) -> None:
        self.socket, self.outbufs, self.total_outbufs_len = sock, [ChunkQueue()], 0

    def write(self, data: bytes) -> None:
        self.outbufs[0].append(data)
        self.total_outbufs_len += len(data)


def test_a_flush_sends_queued_chunks_in_one_call_and_stops_when_the_kernel_is_full():
    chunks = [bytes([i]) * 32_768 for i in range(6)]
    roomy = _Channel(_CountingSocket(room=1 << 30))
    for chunk in chunks:
        roomy.write(chunk)
    assert roomy._flush_some() and roomy.socket.calls == 1  # waitress: one send per chunk
    assert bytes(roomy.socket.received) == b"".join(chunks) and roomy.total_outbufs_len == 0
    full = _Channel(_CountingSocket(room=50_000))
    for chunk in chunks:
        full.write(chunk)
    assert full._flush_some() and full.socket.calls == 1  # partial: no refused second call
    assert full.total_outbufs_len == 6 * 32_768 - 50_000
    assert not full._flush_some() and full.total_outbufs_len == 6 * 32_768 - 50_000
