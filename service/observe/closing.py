"""A response body that runs a callback once when the server closes it (PEP 3333 ``close``).

The only moment a WSGI middleware knows a streamed response has ended is when the server calls
``close()`` on the iterable; metrics and the request log both hook there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

__all__ = ["ClosingBody"]


class ClosingBody:
    def __init__(self, body: Iterable[bytes], done: Callable[[], None]) -> None:
        self._body = body
        self._done: Callable[[], None] | None = done

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._body)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            done, self._done = self._done, None
            if done is not None:
                done()
