"""Admission control: a stream gets a slot or an immediate 503, never a silent queue.

waitress hands each request to the next free worker thread and queues the rest in memory with
no limit and no deadline. A stream holds its thread for as long as its client reads (or does not
read), so a handful of long or stalled streams used to take every thread, and ``/healthz`` then
waited behind them in that queue. Here a stream must take one of ``stream_slots`` slots before
it opens its source; the slots are fewer than the threads, so the threads left over are always
free for probes, metrics, status and small pages, and for answering the 503 of a stream that
found no slot.

A slot has one owner at a time, so no early return can leak it. The view holds its ``Ticket`` as
a context manager: leaving the ``with`` block gives the slot back (a 400, a 404, a 503, a HEAD,
an exception), unless the view handed the ticket over to the response body first
(``hand_over()``); the body's close (the stream observer's ``finished``), which waitress always
calls, gives it back then. ``Ticket.release`` is the one place a slot is returned; a small page
that needs no slot gets ``NO_SLOT``, which has the same shape and holds nothing.

A stream request can be refused before a worker thread sees it: the server's loop thread asks
``refusal()`` (service/server/door.py) what ``admit`` would answer if every stream request it has
already passed on were admitted first, and answers the 503 itself when that is a refusal. A
request it passes on is counted as ``Expected`` until its view takes its decision (``admit``) or
the request ends, whichever comes first (``Expected.settle``, the one place it is uncounted): a
burst arriving together is then judged as a burst, not each against an empty server.

A second, optional cap counts streams per client address, so one client cannot take every slot.
Behind a proxy that address is the proxy's unless the proxy is trusted (its forwarded header is
then believed by waitress and becomes ``REMOTE_ADDR``). With instances sharing Redis
(``leases``, shared/leases.py) the cap holds across them: after this instance's own checks the
stream also takes a lease of its client's, refused when the client runs the cap on all
instances together; ``Ticket.release`` gives the lease back with the slot, once. When Redis
cannot say, this instance's cap alone applies: never a refusal because Redis is down. A
draining server admits no new stream.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

from ..shared.leases import ClientLeases
from ..shared.store import UNAVAILABLE
from .lag import PROCESS_LAG, SchedulingLag

__all__ = [
    "CLIENT_LIMIT",
    "DRAINING",
    "NOT_EXPECTED",
    "NO_SLOT",
    "OVERLOADED",
    "REASONS",
    "SLOTS_FULL",
    "Admission",
    "Expected",
    "NoSlot",
    "Rejected",
    "Ticket",
]

SLOTS_FULL = "slots_full"
CLIENT_LIMIT = "client_limit"
DRAINING = "draining"
OVERLOADED = "overloaded"
REASONS = (SLOTS_FULL, CLIENT_LIMIT, DRAINING, OVERLOADED)  # streams_rejected_total's labels


class Rejected(Exception):
    """No slot for this stream now; ``reason`` is the metric label, ``message`` for the page."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class Ticket:
    """One admitted stream's slot: a context manager until handed over, then a StreamObserver.

    ``with ticket:`` gives the slot back when the block ends, unless ``hand_over()`` passed it
    to the stream body inside the block; the body's end (``finished``) gives it back then.
    """

    __slots__ = ("_admission", "_client", "_handed_over", "_lease", "_released")

    def __init__(self, admission: Admission, client: str, lease: str | None = None) -> None:
        self._admission = admission
        self._client = client
        self._lease = lease  # the client's lease across instances, if one was taken
        self._handed_over = False
        self._released = False

    def __enter__(self) -> Ticket:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if not self._handed_over:
            self.release()

    def hand_over(self) -> Ticket:
        """The caller's body owns the slot from now on (as its observer): ``with`` keeps out."""
        self._handed_over = True
        return self

    def chunk_sent(self, nbytes: int, rows_read: int, uncompressed: int) -> None:
        pass

    def finished(self, outcome: str, rows_read: int) -> None:
        self.release()

    def release(self) -> None:
        """Give the slot back; safe to call more than once."""
        if not self._released:
            self._released = True
            self._admission._release(self._client, self._lease)


class NoSlot:
    """What a stream that needs no slot holds (a small page): a ticket that holds nothing."""

    __slots__ = ()

    def __enter__(self) -> NoSlot:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass

    def hand_over(self) -> None:
        return None


NO_SLOT = NoSlot()


class Expected:
    """A stream request passed on to a worker by the loop thread: counted until decided."""

    __slots__ = ("_admission", "_settled")

    def __init__(self, admission: Admission | None) -> None:
        self._admission = admission
        self._settled = admission is None

    def settle(self) -> None:
        """No longer expected (admitted, refused, or ended without asking); safe to repeat."""
        if not self._settled:
            self._settled = True
            self._admission._settle()  # type: ignore[union-attr]


NOT_EXPECTED = Expected(None)
"""What a request the loop thread did not count holds: settling it does nothing."""


class Admission:
    """``slots`` streams at once in this process, at most ``per_client`` per address (0: any),
    counted across instances when ``leases`` is given.

    Past ``floor`` streams, a new one is also refused while the process's threads wait more
    than ``max_lag`` seconds for their turn (``lag``: service/server/lag.py): the process is
    then at its CPU capacity, and one more stream would slow every reader and probe instead of
    being served. 0 turns that rule off. The lag shows a stream's cost only once it runs (and a
    stream renders its first megabytes at full speed, whatever its reader), so a burst of
    arrivals would all be admitted before it rose: past the floor, at most ``per_second``
    streams are admitted in any second (a token bucket of that size, refilled continuously).
    """

    def __init__(
        self,
        slots: int,
        per_client: int = 0,
        leases: ClientLeases | None = None,
        *,
        max_lag: float = 0.0,
        floor: int = 0,
        per_second: int = 0,
        lag: SchedulingLag | None = None,
    ) -> None:
        if slots < 1:
            raise ValueError(f"slots must be at least 1, got {slots}")
        self.slots = slots
        self.per_client = per_client
        self.max_lag = max_lag
        self.floor = floor
        self.lag = lag if lag is not None else PROCESS_LAG
        self.per_second = per_second
        self._tokens = float(per_second)  # admissions past the floor available now
        self._filled_at = time.monotonic()
        self.draining = False
        self._lock = threading.Lock()
        self._in_use = 0
        self._expected = 0  # stream requests passed on by the loop thread, not yet decided
        self._by_client: Counter[str] = Counter()
        self._leases = leases if per_client else None

    @property
    def in_use(self) -> int:
        return self._in_use

    @property
    def expected(self) -> int:
        return self._expected

    def expect(self) -> Expected:
        """Count one more stream request on its way to a view (the loop thread, after
        ``refusal()`` said none)."""
        with self._lock:
            self._expected += 1
        return Expected(self)

    def refusal(self) -> Rejected | None:
        """What ``admit`` would answer one more stream if every expected one were admitted
        first; None when it would admit it. Takes nothing: the view still decides."""
        with self._lock:
            try:
                self._check(self._in_use + self._expected, consume=False)
            except Rejected as exc:
                return exc
        return None

    def admit(self, client: str, expected: Expected = NOT_EXPECTED) -> Ticket:
        """A slot for a stream from ``client``, or ``Rejected`` saying why not; the request's
        ``expected`` count (the loop thread's) is settled by this decision either way."""
        expected.settle()
        with self._lock:
            self._check(self._in_use, consume=True)
            if self.per_client and self._by_client[client] >= self.per_client:
                raise Rejected(
                    CLIENT_LIMIT,
                    f"This client already runs {self.per_client} streams, the most one client "
                    "may run at once.",
                )
            self._in_use += 1
            self._by_client[client] += 1
        if self._leases is None:
            return Ticket(self, client)
        # Asked outside the lock: a slow Redis delays this stream only, never the others.
        lease = self._leases.take(client, self.per_client)
        if lease is None:
            self._release(client, None)
            raise Rejected(
                CLIENT_LIMIT,
                f"This client already runs {self.per_client} streams across this service's "
                "instances, the most one client may run at once.",
            )
        return Ticket(self, client, None if lease is UNAVAILABLE else lease)

    def _check(self, running: int, consume: bool) -> None:
        """Refuse one more stream when ``running`` streams would run (the lock is held); with
        ``consume``, take its admission from the ramp, else count the expected ones' too."""
        if self.draining:
            raise Rejected(DRAINING, "The server is shutting down; try another instance.")
        if running >= self.slots:
            raise Rejected(SLOTS_FULL, f"All {self.slots} stream slots of this server are taken.")
        if self.max_lag and running >= self.floor:
            # The expected streams that would be admitted past the floor, before this one.
            ahead = 0 if consume else running - max(self._in_use, self.floor)
            self._check_load(ahead, consume)

    def _check_load(self, ahead: int, consume: bool) -> None:
        """Past the floor (the lock is held): refuse if the CPU is spent or the ramp is used up
        (``ahead`` admissions already promised to expected streams)."""
        lag = self.lag.now
        if lag > self.max_lag:
            raise Rejected(
                OVERLOADED,
                f"This server is at its capacity: its threads wait {lag * 1000:.0f} ms for "
                f"their turn (it admits new streams below {self.max_lag * 1000:.0f} ms).",
            )
        if not self.per_second:
            return
        now = time.monotonic()
        self._tokens = min(
            float(self.per_second), self._tokens + (now - self._filled_at) * self.per_second
        )
        self._filled_at = now
        if self._tokens - ahead < 1:
            raise Rejected(
                OVERLOADED,
                f"This server admits at most {self.per_second} new streams a second once "
                f"{self.floor} run, until it has measured what they cost.",
            )
        if consume:
            self._tokens -= 1

    def _settle(self) -> None:
        with self._lock:
            self._expected -= 1

    def _release(self, client: str, lease: str | None) -> None:
        if lease is not None and self._leases is not None:
            self._leases.give_back(client, lease)
        with self._lock:
            self._in_use -= 1
            self._by_client[client] -= 1
            if self._by_client[client] <= 0:
                del self._by_client[client]
