"""A bounded budget of authentication failures per client: a guesser is told to back off.

What protects a token is its 256 random bits (2^255 guesses on average), not this budget. The
budget only tells a client that keeps presenting wrong credentials to stop, cheaply: it is
consulted **after** the credential was checked and **only** when a presented credential was
wrong (malformed, unknown, expired). So a valid credential is let in from any address whatever
that address spent, a request without credentials spends nothing (it guesses nothing), and a
stranger behind the same NAT or proxy cannot lock anyone out. Once a client's budget is spent its
further failures are 429 + ``Retry-After`` instead of 401; the answer is immediate on purpose:
sleeping would hold a worker thread per guess, which is how a slow-down becomes a denial of
service.

Each client address has a bucket of ``per_minute`` failures that refills continuously. Two
stores keep the buckets behind one method, ``fail(client) -> seconds to wait`` (count and check
in one step, so concurrent failures cannot both slip through):

- ``FailureBudget``: in memory, one process; at most ``max_clients`` addresses (the least
  recently failing are forgotten), so a flood from many addresses costs bounded memory;
- ``SharedFailureBudget``: SQLite in the directory the ``--processes`` children share
  (``TABLESTREAM_SHARED_DIR``), so the budget holds per server, not per child. It is touched only
  on failures, in one short ``BEGIN IMMEDIATE`` transaction (WAL, ~0.1 ms); rows idle for a
  minute are full buckets again and are deleted, so it stays bounded too. Any SQLite error
  degrades to "within budget" (401, never 500) with a warning at most once a minute: the budget
  is a courtesy, the tokens are the lock.

- ``RedisFailureBudget``: with ``TABLESTREAM_REDIS_URL``, every instance's failures spend one
  bucket in Redis (a hash per address, read, refilled on Redis's clock, spent and written back
  by one Lua script, so failures at two instances at once cannot both slip through; its TTL is
  ``WINDOW_S``, after which it would be full anyway). When Redis does not answer, the instance's
  own store above takes the failure (shared/store.py): the budget then holds per instance.

Behind a trusted proxy the address is the client's (``X-Forwarded-For``), not the proxy's.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Protocol

from ..shared.store import UNAVAILABLE, SharedStore

__all__ = [
    "WINDOW_S",
    "Budget",
    "FailureBudget",
    "RedisFailureBudget",
    "SharedFailureBudget",
    "budget_for",
    "retry_after",
]

log = logging.getLogger("tablestream.access")

WINDOW_S = 60.0
"""A bucket refills completely in this long; one untouched longer is as if never touched."""
WARN_EVERY_S = 60.0


class Budget(Protocol):
    per_minute: int

    def fail(self, client: str) -> int:
        """Count one failure of ``client``: 0 while within budget, else Retry-After seconds."""
        ...


def _after(level: float, per_minute: int, elapsed: float) -> float:
    """A bucket's level ``elapsed`` seconds after it was ``level``: refilled, capped."""
    return min(float(per_minute), level + elapsed * per_minute / WINDOW_S)


def retry_after(level: float, per_minute: int) -> int:
    """0 when a failure at ``level`` is within budget, else the seconds until one would be."""
    if level >= 1.0:
        return 0
    return max(1, int((1.0 - level) * WINDOW_S / per_minute + 0.999))


class FailureBudget:
    """The buckets of one process, in memory."""

    def __init__(self, per_minute: int, max_clients: int = 10_000) -> None:
        self.per_minute = per_minute
        self._max = max_clients
        self._lock = threading.Lock()
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # level, at

    def fail(self, client: str) -> int:
        if not self.per_minute:
            return 0
        with self._lock:
            now = time.monotonic()
            level, at = self._buckets.get(client, (float(self.per_minute), now))
            level = _after(level, self.per_minute, now - at)
            self._buckets[client] = (max(0.0, level - 1.0), now)
            self._buckets.move_to_end(client)
            while len(self._buckets) > self._max:
                self._buckets.popitem(last=False)
        return retry_after(level, self.per_minute)


class SharedFailureBudget:
    """The buckets of every process sharing ``path`` (an SQLite file), on wall-clock time."""

    def __init__(self, path: str | Path, per_minute: int) -> None:
        self.per_minute = per_minute
        self._path = str(path)
        self._local = threading.local()  # one connection per thread: sqlite3's own rule
        self._warned = -WARN_EVERY_S
        if per_minute:
            self._db()  # made now: an unusable directory shows at start, not at a failure

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self._path, timeout=1.0, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=OFF")  # a lost bucket after a crash costs nothing
            db.execute(
                "CREATE TABLE IF NOT EXISTS budget "
                "(client TEXT PRIMARY KEY, level REAL NOT NULL, at REAL NOT NULL) WITHOUT ROWID"
            )
            self._local.db = db
        return db

    def fail(self, client: str) -> int:
        if not self.per_minute:
            return 0
        now = time.time()  # shared by processes: monotonic clocks are per boot, not comparable
        try:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute(
                    "SELECT level, at FROM budget WHERE client = ?", (client,)
                ).fetchone()
                level = (
                    float(self.per_minute)
                    if row is None
                    else _after(row[0], self.per_minute, max(0.0, now - row[1]))
                )
                db.execute(
                    "INSERT OR REPLACE INTO budget VALUES (?, ?, ?)",
                    (client, max(0.0, level - 1.0), now),
                )
                if row is None:  # a new client: forget those whose buckets are full again
                    db.execute("DELETE FROM budget WHERE at < ?", (now - WINDOW_S,))
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            self._degraded(exc)
            return 0
        return retry_after(level, self.per_minute)

    def _degraded(self, exc: sqlite3.Error) -> None:
        now = time.monotonic()
        if now - self._warned >= WARN_EVERY_S:
            self._warned = now
            log.warning(
                "failure budget store %s unusable (%s): failures are answered 401 without a "
                "budget until it works again",
                self._path,
                exc,
            )


_SPEND = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local per, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local was = redis.call('HMGET', KEYS[1], 'level', 'at')
local level = per
if was[1] then
  level = math.min(per, tonumber(was[1]) + math.max(0, now - tonumber(was[2])) * per / window)
end
redis.call('HSET', KEYS[1], 'level', tostring(math.max(0, level - 1)), 'at', now)
redis.call('PEXPIRE', KEYS[1], window)
return tostring(level)
"""


class RedisFailureBudget:
    """The buckets of every instance on ``store``; ``fallback``'s when Redis cannot say."""

    def __init__(self, store: SharedStore, per_minute: int, fallback: Budget) -> None:
        self.per_minute = per_minute
        self._store = store
        self._fallback = fallback
        self._spend = store.script(_SPEND)

    def fail(self, client: str) -> int:
        if not self.per_minute:
            return 0
        key = self._store.key("budget", client)
        args = [self.per_minute, int(WINDOW_S * 1000)]
        level = self._store.run("budget", lambda r: self._spend(keys=[key], args=args, client=r))
        if level is UNAVAILABLE:
            return self._fallback.fail(client)
        return retry_after(float(level), self.per_minute)


def budget_for(per_minute: int, shared_dir: str, store: SharedStore | None = None) -> Budget:
    """Redis when instances share one, else the processes' shared directory, else memory."""
    local: Budget = (
        SharedFailureBudget(Path(shared_dir) / "failure-budget.sqlite3", per_minute)
        if shared_dir
        else FailureBudget(per_minute)
    )
    if store is not None and per_minute:
        return RedisFailureBudget(store, per_minute, local)
    return local
