"""The loop that waits on every connection: epoll, paying per event, not per connection.

waitress's loop (``wasyncore.poll2``) builds a new ``poll()`` set on every pass: it asks every
open connection ``readable()`` and ``writable()``, registers it, and the kernel then scans them
all. That is O(connections) Python calls and an O(connections) system call per pass, whatever
happened. With 10,000 open sockets (a flood, or many idle kept-alive clients) each pass cost
tens of milliseconds, and every probe, accept and chunk waited for it (issue 29).

Here the interest of each descriptor is kept in the kernel (``epoll``) and re-evaluated only
where it can have changed:

- a descriptor that had an event this pass (its channel read, wrote or closed);
- a descriptor in ``watched``: the listening socket and the trigger, and every channel that is
  *busy* (a request queued or being served, bytes to send, closing). Worker threads change a
  busy channel's interest without an event on its socket (a response written, a request done)
  and pull the trigger; busy channels are as many as the requests in flight;
- a descriptor ``touch()``-ed by the loop's own checks (a deadline closing a connection).

A channel that is *quiet* (waiting for a request: half-open, trickling a header, or idle
between requests) wants to read and nothing else until its own socket says something, so it is
left alone in the kernel. The quiet channels are also kept in the order they became quiet: the
oldest is the one to drop when the process is at its connection limit (``oldest_quiet``).

Events are dispatched as waitress's own loop does (``wasyncore.readwrite``; epoll's flag values
are poll's). Descriptors come and go through the socket map (``ChannelMap``), which records each
change for the next pass, from whichever thread made it.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import select
from collections.abc import Callable
from typing import Any

from waitress import wasyncore

__all__ = ["ChannelMap", "EpollLoop"]

_READ = select.EPOLLIN | select.EPOLLPRI
_WRITE = select.EPOLLOUT


class ChannelMap(dict):
    """waitress's socket map (fd → dispatcher), recording every add and removal for the loop."""

    def __init__(self) -> None:
        super().__init__()
        self.changes: collections.deque[tuple[int, Any]] = collections.deque()

    def __setitem__(self, fd: int, obj: Any) -> None:
        super().__setitem__(fd, obj)
        self.changes.append((fd, obj))

    def __delitem__(self, fd: int) -> None:
        super().__delitem__(fd)
        self.changes.append((fd, None))


def _busy(obj: Any) -> bool:
    """Can this dispatcher's interest change without an event on its own socket?"""
    requests = getattr(obj, "requests", None)
    if requests is None:
        return True  # not a channel (the listener, the trigger): always re-evaluated
    return bool(requests or obj.total_outbufs_len or obj.will_close or obj.close_when_flushed)


class EpollLoop:
    """One ``epoll`` set kept in step with a ``ChannelMap``; ``poll()`` is one pass."""

    def __init__(self, map: ChannelMap) -> None:
        self.map = map
        self._epoll = select.epoll()
        self._registered: dict[int, int] = {}  # fd → the event mask the kernel holds
        self.watched: set[int] = set()  # re-evaluated every pass
        self.quiet: dict[int, Any] = {}  # fd → channel waiting for a request, oldest first
        # Called after each event: what the event queued for the loop thread itself (a probe,
        # a door's 503) is answered then, not after the whole pass.
        self.after_event: Callable[[], None] = _nothing

    def close(self) -> None:
        self._epoll.close()

    def touch(self, fd: int | None) -> None:
        """Re-evaluate ``fd`` on the next pass (its channel was changed by the loop's checks)."""
        if fd is not None:
            self.watched.add(fd)

    def oldest_quiet(self) -> Any | None:
        """The channel that has waited longest for a request, or None."""
        for fd, channel in self.quiet.items():
            if self.map.get(fd) is channel and not _busy(channel):
                return channel  # (one that turned busy this pass leaves at the next)
        return None

    def poll(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for events and dispatch them; returns how many of
        them were readable (requests, accepts, hang-ups: new work, not room to send)."""
        self._apply_changes()
        for fd in list(self.watched):
            self._evaluate(fd)
        try:
            events = self._epoll.poll(timeout)
        except InterruptedError:
            return 0
        # Each event belongs to the channel that held its descriptor when the kernel reported
        # it. An earlier event of the same pass may close that channel and an accept reuse the
        # number: the new connection must not be handed the old one's event (a read of a
        # socket with nothing to read, which waitress logs as a socket error and closes).
        owners = [(fd, flags, self.map.get(fd)) for fd, flags in events]
        for fd, flags, obj in owners:
            if obj is None or self.map.get(fd) is not obj:
                continue
            wasyncore.readwrite(obj, flags)
            self.watched.add(fd)  # whatever the event did, look again next pass
            self.after_event()
        return sum(1 for _, flags in events if flags & ~_WRITE)

    def _apply_changes(self) -> None:
        changes = self.map.changes
        while changes:
            fd, obj = changes.popleft()
            if obj is None:
                self._forget(fd)
            else:
                self._forget(fd)  # a reused descriptor number starts afresh
                self.watched.add(fd)

    def _forget(self, fd: int) -> None:
        self.watched.discard(fd)
        self.quiet.pop(fd, None)
        if self._registered.pop(fd, None) is not None:
            # Gone already if the socket was closed (epoll drops closed descriptions).
            with contextlib.suppress(OSError):
                self._epoll.unregister(fd)

    def _evaluate(self, fd: int) -> None:
        obj = self.map.get(fd)
        if obj is None:
            self._forget(fd)
            return
        # Busy first: a worker thread may end a request between the two questions, and a
        # channel seen busy, then asked its interest once idle, would be left unwatched with the
        # interest of a busy one (not reading): its next request never read (a kept-alive
        # client's second request waited for the keep-alive timeout). Seen busy, it stays
        # watched and is asked again after the worker's trigger; seen idle, only this thread
        # can make it busy again.
        busy = _busy(obj)
        mask = 0
        if obj.readable():
            mask |= _READ
        if obj.writable() and not obj.accepting:
            mask |= _WRITE
        self._register(fd, mask)
        if busy:
            self.quiet.pop(fd, None)
        else:
            self.watched.discard(fd)
            if fd not in self.quiet:
                self.quiet[fd] = obj

    def _register(self, fd: int, mask: int) -> None:
        held = self._registered.get(fd)
        if held == mask:
            return
        try:
            if not mask:
                # An empty mask still reports hang-ups, which a channel that is not reading
                # must not see yet (poll() leaves such a descriptor out, as here).
                if held is not None:
                    del self._registered[fd]
                    self._epoll.unregister(fd)
            elif held is None:
                self._epoll.register(fd, mask)
                self._registered[fd] = mask
            else:
                self._epoll.modify(fd, mask)
                self._registered[fd] = mask
        except OSError as error:
            if error.errno not in (errno.EBADF, errno.ENOENT, errno.EEXIST):
                raise
            # The descriptor was closed under us (its removal is queued) or registered
            # already under a reused number: start again from what the kernel holds.
            self._registered.pop(fd, None)
            with contextlib.suppress(OSError):
                self._epoll.unregister(fd)
            if mask:
                with contextlib.suppress(OSError):
                    self._epoll.register(fd, mask)
                    self._registered[fd] = mask


def _nothing() -> None:
    pass
