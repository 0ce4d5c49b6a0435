"""A connection's unsent output, kept as the chunks it was written in and sent from where they lie.

waitress queues a response's bytes in an ``OverflowableBuffer``: a ``BytesIO`` that spills to a
temp file past ``outbuf_overflow``, read back with ``get(n)`` — a copy of up to ``SO_SNDBUF``
(16 KiB) bytes per ``send()`` attempt, kept or not. A fast reader's buffer is nearly always
empty, so that costs it nothing; a slow reader's holds hundreds of KiB, so every chunk was
written to a file, read back in 16 KiB copies, and copied again when the kernel took only part
of it. The capacity benchmark measured a slow reader at 2-3x the server CPU per byte of a fast
one (issue 30).

``ChunkQueue`` has the same small interface waitress's channel uses (``append``, ``get``,
``skip``, ``__len__``, ``close``) but holds references to the written ``bytes`` and hands out
``memoryview`` slices of them: nothing is copied between the response and the kernel. Memory per
connection is what it was bounded by before, the high watermark (plus one chunk), and none of
it goes to disk. ``ChannelOutput`` is the channel's side (``write_soon``, ``writable``), used by
service/server/channel.py.
"""

from __future__ import annotations

import collections
import itertools
import time
from typing import Any

from waitress.channel import ClientDisconnected
from waitress.wasyncore import _DISCONNECTED, EWOULDBLOCK

__all__ = ["SEND_MAX", "ChannelOutput", "ChunkQueue"]

SEND_MAX = 256 * 1024  # the most one send() is offered; a slice of a chunk costs no copy
VIEWS_MAX = 64  # chunks offered to one sendmsg (the kernel's limit, IOV_MAX, is 1024)
WAIT_S = 1.0  # a writer waiting for room looks again at least this often (a missed wake-up)


class ChunkQueue:
    """Unsent bytes as a queue of chunks and an offset into the first."""

    def __init__(self) -> None:
        self._chunks: collections.deque[bytes] = collections.deque()
        self._offset = 0
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def __bool__(self) -> bool:
        return self._len > 0

    def append(self, data: bytes) -> None:
        if data:
            self._chunks.append(bytes(data) if data.__class__ is not bytes else data)
            self._len += len(data)

    def get(self, numbytes: int = -1, skip: bool = False) -> memoryview | bytes:
        """Up to ``numbytes`` of the first chunk, not copied (the caller sends and skips)."""
        if not self._chunks:
            return b""
        view = memoryview(self._chunks[0])[self._offset :]
        if 0 <= numbytes < len(view):
            view = view[:numbytes]
        if skip:
            self.skip(len(view))
        return view

    def views(self, numbytes: int) -> list[memoryview]:
        """The first chunks (at most ``VIEWS_MAX``), up to ``numbytes`` in all, as views."""
        views: list[memoryview] = []
        offset = self._offset
        for chunk in itertools.islice(self._chunks, VIEWS_MAX):
            view = memoryview(chunk)[offset:] if offset else memoryview(chunk)
            offset = 0
            if len(view) >= numbytes:
                views.append(view[:numbytes])
                break
            views.append(view)
            numbytes -= len(view)
        return views

    def skip(self, numbytes: int, allow_prune: bool = False) -> None:
        if numbytes > self._len:
            raise ValueError(f"cannot skip {numbytes} bytes of {self._len}")
        self._len -= numbytes
        while numbytes:
            left = len(self._chunks[0]) - self._offset
            if numbytes < left:
                self._offset += numbytes
                return
            numbytes -= left
            self._chunks.popleft()
            self._offset = 0

    def prune(self) -> None:
        """Nothing to do: sent chunks are dropped as they are skipped."""

    def close(self) -> None:
        self._chunks.clear()
        self._offset = self._len = 0


class ChannelOutput:
    """The writing side of a waitress channel, mixed into it: queue, wake the loop, wait.

    Two changes to waitress's ``write_soon``, besides the queue: the loop is woken only when
    this write changes what it must do for the connection (it had nothing worth sending and now
    has), not on every chunk of a slow reader, whose socket the loop already watches for room;
    and a writer over the high watermark waits for the loop's notify (with a bounded wait, in
    case one is missed) instead of waking the loop on each turn of its wait.
    """

    # Provided by waitress's HTTPChannel:
    adj: Any
    server: Any
    outbufs: list[Any]
    outbuf_lock: Any
    connected: bool
    requests: list[Any]
    total_outbufs_len: int
    will_close: bool
    close_when_flushed: bool
    last_activity: float
    socket: Any

    def _use_chunk_queue(self) -> None:
        """Called by the channel's ``__init__`` once waitress has made its first buffer."""
        self.outbufs = [ChunkQueue()]
        self.sendbuf_len = SEND_MAX

    def _flush_some(self, do_close: bool = True) -> bool:
        """Send what the kernel takes, several chunks per system call (``sendmsg``).

        waitress's own loop sends the first buffer's next slice, one ``send()`` per chunk, and
        goes on until a send returns nothing: for a slow reader's socket that was four or five
        system calls per readiness event, the last one refused (``EAGAIN``). Each call releases
        and retakes the interpreter, which the loop thread (it answers ``/healthz``) then waits
        for behind every rendering thread. Here one ``sendmsg`` offers up to ``SEND_MAX``
        bytes across the queued chunks, and a partial send ends the attempt: the socket is full.
        """
        queue = self.outbufs[0]
        if queue.__class__ is not ChunkQueue or len(self.outbufs) > 1:
            return super()._flush_some(do_close)  # type: ignore[misc]
        sent = 0
        while queue:
            views = queue.views(SEND_MAX)
            offered = sum(map(len, views))
            try:
                num = self.socket.sendmsg(views)  # type: ignore[attr-defined]
            except OSError as why:
                if why.args[0] == EWOULDBLOCK:
                    break
                if why.args[0] in _DISCONNECTED:
                    if do_close:
                        self.handle_close()  # type: ignore[attr-defined]
                    break
                raise
            queue.skip(num)
            self.total_outbufs_len -= num
            sent += num
            if num < offered:
                break  # the kernel took what it had room for
        if sent:
            self.last_activity = time.time()
            return True
        return False

    def writable(self) -> bool:
        """Is there something the loop would send (or a close to make) now?

        waitress's own test is "any byte unsent", but while a task runs its ``handle_write``
        sends nothing below ``send_bytes``; with a level-triggered poller that made the loop
        spin between a slow reader's chunks.
        """
        if self.will_close or self.close_when_flushed:
            return True
        queued = self.total_outbufs_len
        return bool(queued) and (not self.requests or queued >= self.adj.send_bytes)

    def write_soon(self, data: Any) -> int:
        if data.__class__ is not bytes:  # a file wrapper (none here): waitress's own path
            return super().write_soon(data)  # type: ignore[misc]
        if not self.connected:
            raise ClientDisconnected
        if not data:
            return 0
        with self.outbuf_lock:
            while self.connected and self.total_outbufs_len > self.adj.outbuf_high_watermark:
                if not self.outbuf_lock.wait(WAIT_S):
                    self.server.pull_trigger()
            if not self.connected:
                raise ClientDisconnected
            loop_had_work = self.writable()
            queue = self.outbufs[-1]
            if queue.__class__ is not ChunkQueue:
                queue = ChunkQueue()
                self.outbufs.append(queue)
            queue.append(data)
            self.total_outbufs_len += len(data)
            if self.total_outbufs_len >= self.adj.send_bytes:
                # Send from this thread while the kernel takes it (a fast reader never
                # involves the loop); what is left waits for the loop to see room.
                _, failed = self._flush_exception(self._flush_some, do_close=False)  # type: ignore[attr-defined]
                if failed:
                    self.server.pull_trigger()
                    return len(data)
            if not loop_had_work and self.writable():
                self.server.pull_trigger()
        return len(data)
