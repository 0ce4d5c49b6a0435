"""The per-client stream cap across instances: leases in Redis that expire with their instance.

Each client address has a sorted set ``<prefix>cap:<address>`` of lease ids scored by their
expiry (Redis's own clock, ``TIME``, so instances' clocks never disagree). Taking a lease is one
Lua script, atomic on the server: drop the expired leases, count the rest, add ours if below the
cap. While its stream runs, the store's keeper pushes the expiry on every ``KEEP_S`` (to three
times that from now); giving the lease back is one ``ZREM``, called only by
``Admission._release``, i.e. from ``Ticket.release``, the one place a slot is returned. A
crashed or frozen instance's leases stop being renewed and expire within ``LEASE_S``: the
client's cap frees itself.

When Redis does not answer, ``take`` says ``UNAVAILABLE`` and the instance's own per-client cap
(admission.py) is the only one: a client may then run the cap on each instance, never fewer.
A take that timed out may still run in Redis (its answer lost, or its command delivered late):
its lease id is revoked once Redis answers again (removed, and ``<prefix>revoked:<id>`` set for
``LEASE_S`` so a late take refuses itself), so a lost answer never holds a client's cap.
"""

from __future__ import annotations

import uuid
from typing import Any

from .store import KEEP_S, UNAVAILABLE, SharedStore

__all__ = ["LEASE_S", "ClientLeases"]

LEASE_S = 3 * KEEP_S
"""Seconds a lease lives without renewal: a crashed instance's streams stop counting then."""

_TAKE = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
"""

_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('ZADD', KEYS[1], 'XX', 'CH', now + tonumber(ARGV[2]), ARGV[1]) > 0 then
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
end
return 0
"""


class ClientLeases:
    """Leases of stream slots per client address, shared by every instance on ``store``."""

    def __init__(self, store: SharedStore, lease_s: float = LEASE_S) -> None:
        self._store = store
        self._ttl_ms = int(lease_s * 1000)
        self._take = store.script(_TAKE)
        self._renew = store.script(_RENEW)

    def take(self, client: str, cap: int) -> str | None:
        """A lease id for one more stream of ``client``; None when it already runs ``cap``
        streams across the instances; ``UNAVAILABLE`` when Redis cannot say."""
        key = self._store.key("cap", client)
        lease = uuid.uuid4().hex
        keys, args = [key, self._store.key("revoked", lease)], [cap, lease, self._ttl_ms]
        got = self._store.run("client_cap", lambda r: self._take(keys=keys, args=args, client=r))
        if got is UNAVAILABLE:
            # A call that timed out may still run in Redis (the script was sent, its answer was
            # lost): that lease would be nobody's and hold the client's cap for LEASE_S. It is
            # revoked at the keeper's first tick Redis answers: removed if the take ran already,
            # refused by the script if it runs later.
            self._store.keep(lease, lambda pipe: self._revoke(pipe, keys, lease), once=True)
            return UNAVAILABLE
        if not got:
            return None
        self._store.keep(
            lease,
            lambda pipe: self._renew(keys=[key], args=[lease, self._ttl_ms], client=pipe),
        )
        return lease

    def _revoke(self, pipe: Any, keys: list[str], lease: str) -> None:
        pipe.zrem(keys[0], lease)
        pipe.set(keys[1], 1, px=self._ttl_ms)

    def give_back(self, client: str, lease: str) -> None:
        """End ``lease`` of ``client``; if Redis fails now, the keeper removes it at its first
        tick Redis answers (and it expires within ``LEASE_S`` anyway)."""
        self._store.let_go(lease)
        key = self._store.key("cap", client)
        if self._store.run("client_cap", lambda r: r.zrem(key, lease)) is UNAVAILABLE:
            self._store.keep(lease, lambda pipe: pipe.zrem(key, lease), once=True)
