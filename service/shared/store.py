"""The one connection to the store several instances share (Redis), and what happens when it fails.

What one process decides alone (the per-client stream cap, the failure budget, a page's status
and progress reports) holds for one instance only: behind a balancer a client opens its cap on
every instance and a page's report lands on an instance that does not serve its stream. With
``TABLESTREAM_REDIS_URL`` set, those decisions are taken in Redis, under keys that all start
with ``TABLESTREAM_REDIS_PREFIX`` and all carry a TTL, so nothing outlives its use and a crashed
instance's leases expire by themselves.

Redis is a courtesy, never a condition of serving: every call goes through ``SharedStore.run``,
which answers ``UNAVAILABLE`` instead of raising when Redis fails (refused, timed out, an error
reply), and the caller then decides with this instance's own state (its own cap, its own
budget, its own board). Socket timeouts are short (``TABLESTREAM_REDIS_TIMEOUT``, 0.1 s by
default) and redis-py's retries are off, so a Redis that accepts and never answers costs one
request that timeout, not a stall; after a failure the store is not asked again for
``RETRY_S`` (requests meanwhile decide locally at once). Each fallback counts in
``tablestream_shared_store_errors_total{what}``; a warning is logged at most once a minute.

``keep`` registers a renewal (a lease, a running stream's record) that one daemon thread
sends every ``KEEP_S`` in one pipeline while the holder lives; the holder's ``let_go`` ends it.
A lease whose give-back failed is kept as a removal sent once, at the first tick Redis
answers: a client is not held to a stream that ended during an outage for the lease's TTL.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["KEEP_S", "RETRY_S", "UNAVAILABLE", "WHATS", "SharedStore", "connect"]

log = logging.getLogger("tablestream")

T = TypeVar("T")

RETRY_S = 1.0
"""After a failure, seconds during which the store is not asked (decisions are local)."""
KEEP_S = 10.0
"""Seconds between renewals of what is kept; TTLs of kept keys are three times this."""
WARN_EVERY_S = 60.0
WHATS = ("client_cap", "budget", "board", "keep")
"""The ``what`` label values of tablestream_shared_store_errors_total."""


class _Unavailable:
    """The answer of a store call that failed or was skipped: decide locally."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNAVAILABLE"


UNAVAILABLE: Any = _Unavailable()


def connect(url: str, timeout: float) -> Any:
    """A redis-py client for ``url`` with short timeouts and no retries; ConfigError-ready
    ImportError when the ``redis`` extra is not installed."""
    try:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry
    except ImportError:
        raise ImportError(
            "TABLESTREAM_REDIS_URL is set but the redis package is not installed; install "
            "the extra: pip install 'tablestream[redis]'"
        ) from None
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),  # redis-py 6+ retries 3 times by default: a hung Redis x4
        health_check_interval=0,
        client_name="tablestream",
    )


class SharedStore:
    """Redis at ``url`` under ``prefix``; ``failed(what)`` is told of every local fallback."""

    def __init__(
        self,
        url: str,
        prefix: str,
        timeout: float,
        failed: Callable[[str], None] = lambda what: None,
    ) -> None:
        self.redis = connect(url, timeout)
        self.prefix = prefix
        self._failed = failed
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._warned = -WARN_EVERY_S
        self._kept: dict[object, tuple[Callable[[Any], None], bool]] = {}
        self._keeper: threading.Thread | None = None
        self._url = url
        self._scripts: dict[str, Any] = {}

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    def script(self, source: str) -> Any:
        """A Lua script registered once (EVALSHA, falling back to EVAL when Redis lost it)."""
        found = self._scripts.get(source)
        if found is None:
            found = self._scripts[source] = self.redis.register_script(source)
        return found

    def run(self, what: str, call: Callable[[Any], T]) -> T:
        """``call(redis)``'s answer, or ``UNAVAILABLE`` (counted, warned) when Redis fails or
        failed less than ``RETRY_S`` ago."""
        if time.monotonic() < self._down_until:
            self._failed(what)
            return UNAVAILABLE
        try:
            return call(self.redis)
        except Exception as exc:  # redis.RedisError, OSError: whatever it is, decide locally
            self._fell_back(what, exc)
            return UNAVAILABLE

    def check(self) -> bool:
        """Ask Redis once at start-up: a warning (never a refusal to start) when it fails."""
        return self.run("keep", lambda r: r.ping()) is not UNAVAILABLE

    def keep(self, token: object, renew: Callable[[Any], None], once: bool = False) -> None:
        """Call ``renew(pipeline)`` every ``KEEP_S`` until ``let_go(token)``; with ``once``,
        until it was sent once (a give-back that failed, tried again until Redis takes it)."""
        with self._lock:
            self._kept[token] = (renew, once)
            if self._keeper is None:
                self._keeper = threading.Thread(
                    target=self._keep_loop, name="tablestream-shared-keeper", daemon=True
                )
                self._keeper.start()

    def let_go(self, token: object) -> None:
        with self._lock:
            self._kept.pop(token, None)

    def _keep_loop(self) -> None:
        while True:
            time.sleep(KEEP_S)
            with self._lock:
                kept = list(self._kept.items())
                if not kept:
                    self._keeper = None  # started again by the next keep()
                    return

            def send(r: Any, kept: list[tuple[object, Any]] = kept) -> bool:
                pipe = r.pipeline(transaction=False)
                for _, (renew, _) in kept:
                    renew(pipe)
                pipe.execute()
                return True

            if self.run("keep", send) is not UNAVAILABLE:
                with self._lock:
                    for token, (renew, once) in kept:
                        if once and self._kept.get(token) == (renew, once):
                            del self._kept[token]

    def _fell_back(self, what: str, exc: BaseException) -> None:
        now = time.monotonic()
        self._failed(what)
        with self._lock:
            self._down_until = now + RETRY_S
            warn = now - self._warned >= WARN_EVERY_S
            if warn:
                self._warned = now
        if warn:
            log.warning(
                "shared store %s failed (%s: %s): the per-client cap, failure budget and stream "
                "board hold per instance until it answers again",
                _no_password(self._url),
                type(exc).__name__,
                exc,
            )


def _no_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    return f"{scheme}{sep}***@{rest.rpartition('@')[2]}"
