"""The stream board across instances: a page's status question and progress report, in Redis.

Behind a balancer a table page's ``GET /streams/<id>?parsed=N`` goes to whichever instance the
balancer picks, seldom the one serving its stream: that instance answered 404 and the report was
lost, so the page's stream ran unpaced (its memory bound gone) and its status was unknown. The
same records as observe/board.py's, under ``<prefix>stream:<key>`` (key: a hash of owner and
request id, never client text), and reports under ``<prefix>parsed:<key>``:

- a stream's record is written when it starts and when it ends; while it runs the store's
  keeper renews its TTL (``RUNNING_S``), so a crashed instance's streams vanish within that;
  an ended record lives ``ENDED_S`` for the page's last question;
- an instance that receives a report for another instance's running stream writes it (TTL
  ``PARSED_S``, with a nonce, so a repeated count is still news); the serving instance's pacer
  reads it at most every ``POLL_S`` (one GET) while the page reports.

Redis was chosen over routing reports to their stream's instance through the balancer: the
balancer does not know which instance a request id belongs to (nginx and a Kubernetes Service
pick by load), a report must reach a live stream within the page's ``PATIENCE``, and the
figures in docs/redis.md show the cost is a few GETs per second per paced page.

When Redis does not answer, ``local`` (the ``--processes`` siblings' directory board, or none)
is used: per instance, as without Redis. ``local`` is always written too, so siblings on one
host still find each other's streams during an outage.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Callable
from typing import Any

from ..observe.board import IN_PROGRESS, Board, board_key
from .store import KEEP_S, UNAVAILABLE, SharedStore

__all__ = ["ENDED_S", "PARSED_S", "RUNNING_S", "RedisBoard"]

RUNNING_S = 3 * KEEP_S
"""TTL of a running stream's record, renewed while it runs."""
ENDED_S = 600
"""TTL of an ended stream's record: the page asks for its outcome soon after the end."""
PARSED_S = 30
"""TTL of a page's last report; the pacer reads it within ``POLL_S``."""


class RedisBoard:
    """The board of every instance on ``store``, as seen by this one (``instance``)."""

    def __init__(self, store: SharedStore, local: Board | None, instance: str = "") -> None:
        self._store = store
        self._local = local
        self._id = instance or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def post(self, request_id: str, record: dict[str, Any]) -> None:
        key = self._store.key("stream", board_key(request_id, record["owner"]))
        running = record.get("outcome") == IN_PROGRESS
        data = json.dumps({**record, "request_id": request_id, "pid": self._id})
        ttl = int((RUNNING_S if running else ENDED_S) * 1000)
        self._store.run("board", lambda r: r.set(key, data, px=ttl))
        if running:
            self._store.keep(("board", key), lambda pipe: pipe.pexpire(key, ttl))
        else:
            self._store.let_go(("board", key))
        if self._local is not None:
            self._local.post(request_id, record)

    def find(self, request_id: str, owner: str | None = None) -> dict[str, Any] | None:
        key = self._store.key("stream", board_key(request_id, owner))
        got = self._store.run("board", lambda r: r.get(key))
        if got is UNAVAILABLE:
            return self._local.find(request_id, owner) if self._local is not None else None
        found = _loads(got)
        if found is None or found.get("request_id") != request_id or found.get("owner") != owner:
            return None
        return found

    def remove(self, request_id: str, owner: str | None = None) -> None:
        """This instance forgot the stream: its record is no longer renewed and expires."""
        self._store.let_go(("board", self._store.key("stream", board_key(request_id, owner))))
        if self._local is not None:
            self._local.remove(request_id, owner)

    def report(self, request_id: str, owner: str | None, parsed: int) -> bool:
        name = board_key(request_id, owner)
        got = self._store.run("board", lambda r: r.get(self._store.key("stream", name)))
        if got is not UNAVAILABLE:
            found = _loads(got)
            if (
                found is None
                or found.get("request_id") != request_id
                or found.get("owner") != owner
                or found.get("pid") == self._id
                or found.get("outcome") != IN_PROGRESS
            ):
                return False
            data = json.dumps({"request_id": request_id, "parsed": parsed, "n": uuid.uuid4().hex})
            key = self._store.key("parsed", name)
            if self._store.run("board", lambda r: r.set(key, data, px=PARSED_S * 1000)) is not (
                UNAVAILABLE
            ):
                return True
        return self._local is not None and self._local.report(request_id, owner, parsed)

    def reports(self, request_id: str, owner: str | None = None) -> Callable[[], int | None]:
        key = self._store.key("parsed", board_key(request_id, owner))
        local = self._local.reports(request_id, owner) if self._local is not None else None
        seen: list[bytes | None] = [None]

        def poll() -> int | None:
            got = self._store.run("board", lambda r: r.get(key))
            if got is UNAVAILABLE:
                return local() if local is not None else None
            if got is None or got == seen[0]:
                return local() if local is not None else None
            seen[0] = got
            found = _loads(got)
            if found is None or found.get("request_id") != request_id:
                return None
            parsed = found.get("parsed")
            return parsed if isinstance(parsed, int) else None

        return poll


def _loads(raw: bytes | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        found = json.loads(raw)
    except ValueError:
        return None
    return found if isinstance(found, dict) else None
