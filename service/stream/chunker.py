"""Template pieces → HTTP chunks of at least ``chunk_bytes`` bytes.

A Jinja stream yields a dozen tiny strings per table row; handing each to waitress as its own
HTTP chunk costs ~60x in throughput. The page now renders a whole batch of rows per piece, so
pieces come both tiny (the page's own markup) and larger than a chunk (a batch). The chunker
joins pieces until their length reaches the target, cuts the text into chunks of exactly
``chunk_bytes`` characters, carries the rest over, and encodes once per chunk. Length is counted
in characters, which never exceeds the UTF-8 byte length, so every chunk but the head and the
last is at least ``chunk_bytes`` bytes (exactly that for ASCII) without re-encoding anything to
measure it.

The page head must not wait for a full chunk: the template calls ``{{ flush() }}`` once the
table header is out, and the chunker sends what it has at once. Later flushes work the same way
(a page past its window sends each batch as a short count, and one every 250 ms must leave at
once so the reader's counter moves: ``stream/pacing.py``); the loop reads the flag once per
piece, and a piece is a whole batch of rows or a bit of the page's own markup.
A stream can be asked to stop from outside (shutdown grace over, a client too slow): ``stop``
sets a flag that the chunker reads once per chunk it emits, never per piece. It then stops
taking pieces and raises ``StreamCut``; what it had buffered ends at a piece boundary, i.e.
after a whole batch of rows, and is kept in ``unsent`` for the caller to send before its error
marker. So a cut stream carries whole rows and then the marker, never half a row.

This module does no I/O and knows nothing of Flask, so it is tested as a pure function.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

__all__ = ["Chunker", "StreamCut"]


class StreamCut(RuntimeError):
    """The stream was asked to stop (``Chunker.stop``); the message says why."""


class Chunker:
    """Coalesce ``str`` pieces into UTF-8 ``bytes`` chunks of about ``chunk_bytes``."""

    def __init__(self, chunk_bytes: int) -> None:
        if chunk_bytes < 1:
            raise ValueError(f"chunk_bytes must be positive, got {chunk_bytes}")
        self.chunk_bytes = chunk_bytes
        self._flush_requested = False
        self._stop_reason = ""
        self.unsent = b""  # what was buffered when the pieces raised or the stream was cut

    def flush(self) -> str:
        """Called from the template: send everything rendered so far as its own chunk."""
        self._flush_requested = True
        return ""

    def stop(self, reason: str) -> None:
        """Ask the stream to end after the rows it is cutting up now (any thread may call)."""
        self._stop_reason = reason or "stopped"

    @property
    def stop_reason(self) -> str:
        """Why the stream was asked to stop; empty if it was not."""
        return self._stop_reason

    def chunks(self, pieces: Iterable[str]) -> Iterator[bytes]:
        limit = self.chunk_bytes
        buffer: list[str] = []
        it = iter(pieces)
        try:
            yield from self._coalesce(it, buffer, limit)
        except Exception:
            # The pieces failed (a source went away): keep what was rendered, whole rows, so
            # the caller can send it before its error marker instead of losing up to a chunk.
            self.unsent = "".join(buffer).encode()
            buffer.clear()
            raise

    def _coalesce(self, it: Iterator[str], buffer: list[str], limit: int) -> Iterator[bytes]:
        append = buffer.append
        size = 0
        # Head: until the template asks for a flush, look at the flag after every piece.
        for piece in it:
            append(piece)
            size += len(piece)
            if self._flush_requested or size >= limit:
                if size:
                    yield "".join(buffer).encode()
                buffer.clear()
                size = 0
                if self._stop_reason:
                    raise StreamCut(self._stop_reason)
                if self._flush_requested:
                    break
        # Body: the hot loop, one append, one add and one flag per piece.
        self._flush_requested = False
        for piece in it:
            append(piece)
            size += len(piece)
            if size >= limit:
                text = "".join(buffer)
                buffer.clear()
                start = 0
                while size - start >= limit:
                    yield text[start : start + limit].encode()
                    start += limit
                size -= start
                if size:
                    append(text[start:])
                if self._stop_reason:
                    raise StreamCut(self._stop_reason)
            if self._flush_requested:
                self._flush_requested = False
                if size:
                    yield "".join(buffer).encode()
                    buffer.clear()
                    size = 0
                    if self._stop_reason:
                        raise StreamCut(self._stop_reason)
        if size:
            yield "".join(buffer).encode()
            buffer.clear()
