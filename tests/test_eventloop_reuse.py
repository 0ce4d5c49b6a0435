"""An event is dispatched only to the channel that held its descriptor when the kernel reported it.

In one pass of the event loop (service/server/eventloop.py) an earlier event may close a
connection and an accept reuse its descriptor number. The closed connection's event, still in
the pass's list, then went to the new connection: a read of a socket with nothing to read, which
waitress logs as ``Socket error`` (BlockingIOError) and answers by closing the new connection.
Seen four times in a 10,000-socket flood (docs/reliability.md).
"""

from __future__ import annotations

import socket
from typing import Any

from tablestream.server.eventloop import ChannelMap, EpollLoop


class _Dispatcher:
    """The part of a waitress dispatcher the loop uses: interest and a read handler."""

    accepting = False
    requests = None  # not a channel: re-evaluated every pass

    def __init__(self, sock: socket.socket, on_read: Any = None) -> None:
        self.socket = sock
        self.reads = 0
        self._on_read = on_read

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def handle_read_event(self) -> None:
        self.reads += 1
        if self._on_read is not None:
            self._on_read(self)


def test_a_descriptor_reused_within_a_pass_does_not_get_the_closed_channels_event():
    pairs = [socket.socketpair() for _ in range(2)]
    channels = ChannelMap()
    loop = EpollLoop(channels)
    replacements: list[_Dispatcher] = []
    originals: list[_Dispatcher] = []

    def close_the_other_and_reuse_its_number(me: _Dispatcher) -> None:
        if replacements:
            return  # the first read of the pass did it
        other = originals[1 - originals.index(me)]
        fd = other.socket.fileno()
        del channels[fd]  # closed ...
        replacement = _Dispatcher(other.socket)  # ... and its number given to a new connection
        channels[fd] = replacement
        replacements.append(replacement)

    try:
        for ours, _ in pairs:
            dispatcher = _Dispatcher(ours, close_the_other_and_reuse_its_number)
            originals.append(dispatcher)
            channels[ours.fileno()] = dispatcher
        loop.poll(0)  # registers both: nothing to read yet
        for _, theirs in pairs:
            theirs.sendall(b"x")  # both readable in the same pass
        assert loop.poll(1.0) == 2
        assert sorted(d.reads for d in originals) == [0, 1]
        assert replacements and replacements[0].reads == 0, "the new channel got the old event"
    finally:
        loop.close()
        for pair in pairs:
            for sock in pair:
                sock.close()
