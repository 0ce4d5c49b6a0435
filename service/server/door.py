"""The stream 503 answered in the loop thread: a refused request never reaches a worker.

A stream request that finds no slot used to be refused by its view: a worker thread started or
woken for it, Flask routed it, the access gate and the query checks ran, and only then
``Admission.admit`` said no. Each costs ~1 ms of interpreter time, and under load that time is
what there is least of: 266 stream requests arriving together (the reliability suite's "more
stream requests than slots") got their 503s 0.4-0.7 s late on a 2-core machine, behind the
worker hand-offs of the requests before them and the first buffers of the streams admitted.

Here the loop thread, which has just parsed the request, asks ``Admission.refusal()`` whether a
stream would be refused now, counting the stream requests it already passed on as if each were
admitted (``Admission.expect``); if so it answers 503 + ``Retry-After`` itself, as a load
balancer would, and counts it in ``tablestream_streams_rejected_total{reason}`` like a view's.
Which requests take a slot is the views' rule (``views/tables.py``); the door applies it only
where it is certain (``TakesASlot``), so a request it passes on may still be refused by its view,
and one it does not recognise is always passed on. A stream request refused here gets the 503
before its credentials are looked at: a stranger learns only that the server is busy.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from email.utils import formatdate
from typing import Any

from ..security import NOT_STORED, SECURITY_HEADERS
from .admission import Admission, Rejected

__all__ = ["Door", "TakesASlot"]

TakesASlot = Callable[[str, str, str], bool]
"""``(method, path, query)`` -> whether that request certainly asks for a stream slot."""


class Door:
    """Refuses, in the loop thread, the stream requests ``admission`` would refuse anyway."""

    def __init__(
        self,
        admission: Admission,
        takes_a_slot: TakesASlot,
        advice: Callable[[Rejected], str],
        retry_after: int,
        counted: Callable[[str], None],
    ) -> None:
        self.admission = admission
        self._takes_a_slot = takes_a_slot
        self._advice = advice
        self._retry_after = retry_after
        self._counted = counted

    def check(self, request: Any, ident: str) -> bytes | None:
        """The whole 503 response to send when ``request`` is refused; else None, and a stream
        request is counted as expected (``request.expected``) and goes on to a view."""
        if request.error or not self._takes_a_slot(request.command, request.path, request.query):
            return None
        refusal = self.admission.refusal()
        if refusal is None:
            request.expected = self.admission.expect()
            return None
        self._counted(refusal.reason)
        return self._response(request, self._advice(refusal), ident)

    def _response(self, request: Any, text: str, ident: str) -> bytes:
        """503 with ``Connection: close``, written in one piece: the loop thread sends it with
        one system call (waitress's error task took 3-40 ms of a busy interpreter each)."""
        body = f"{text}\n".encode()
        head = [
            f"HTTP/{request.version} 503 Service Unavailable",
            f"Date: {_http_date()}",
            f"Server: {ident}",
            "Connection: close",
            "Content-Type: text/plain; charset=utf-8",
            f"Content-Length: {len(body)}",
            f"Retry-After: {self._retry_after}",
            f"Cache-Control: {NOT_STORED}",
            *(f"{name}: {value}" for name, value in SECURITY_HEADERS.items()),
        ]
        response = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        return response if request.command == "HEAD" else response + body


_date: tuple[int, str] = (0, "")


def _http_date() -> str:
    """An HTTP Date (RFC 9110 §5.6.7), made once a second."""
    global _date
    now = int(time.time())
    if _date[0] != now:
        _date = (now, formatdate(now, usegmt=True))
    return _date[1]
