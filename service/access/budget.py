"""A bounded budget of authentication failures per client: guessing is slowed, never costly.

Each client address has a bucket of ``per_minute`` failures that refills continuously. Once it
is empty the client's requests are refused with 429 and ``Retry-After`` before any credential
is looked at, so a guesser gets a few dozen tries a minute and costs the server a dictionary
lookup per request. The answer is immediate on purpose: sleeping before answering would hold a
worker thread per guess, which is how a slow-down becomes a denial of service.

At most ``max_clients`` addresses are remembered (the least recently failing are forgotten), so
a flood from many addresses costs bounded memory. Behind a trusted proxy the address is the
client's (``X-Forwarded-For``), not the proxy's.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

__all__ = ["FailureBudget"]


class FailureBudget:
    def __init__(self, per_minute: int, max_clients: int = 10_000) -> None:
        self.per_minute = per_minute
        self._rate = per_minute / 60.0
        self._max = max_clients
        self._lock = threading.Lock()
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at

    def _level(self, client: str, now: float) -> float:
        tokens, at = self._buckets.get(client, (float(self.per_minute), now))
        return min(float(self.per_minute), tokens + (now - at) * self._rate)

    def exhausted(self, client: str) -> int:
        """0 if ``client`` may try again now, else the seconds until it may (Retry-After)."""
        if not self.per_minute:
            return 0
        with self._lock:
            if client not in self._buckets:
                return 0
            level = self._level(client, time.monotonic())
        return 0 if level >= 1.0 else max(1, int((1.0 - level) / self._rate + 0.999))

    def spend(self, client: str) -> None:
        """Count one failure of ``client``."""
        if not self.per_minute:
            return
        with self._lock:
            now = time.monotonic()
            level = self._level(client, now)
            self._buckets[client] = (max(0.0, level - 1.0), now)
            self._buckets.move_to_end(client)
            while len(self._buckets) > self._max:
                self._buckets.popitem(last=False)
