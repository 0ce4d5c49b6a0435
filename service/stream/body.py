"""The response body of one table stream: chunks out, outcome decided, source always closed.

This is the object waitress iterates. It owns the stream's lifecycle because nothing else can:
Jinja's ``TemplateStream`` has no ``close()``, so a row source handed to a template would never
be closed by the server. waitress calls ``close()`` on the response iterable (PEP 3333) when the
stream ends, when a write to a vanished client fails, or without iterating at all; every one of
those paths ends in ``_release``, which closes the source and reports the outcome exactly once.

A source that fails after the headers went out cannot change the status code any more. The
body then gets an explicit error marker and the exception is re-raised, so waitress cuts the
connection without the terminating zero-length chunk: a client can never mistake a cut page
for a complete one (the success footer is only rendered after the last row). With gzip the
marker is compressed like any chunk and the gzip trailer is left out, so the cut shows there too.
The marker carries the stream's resume point (``resume``, asked once, at the cut): the rows
before it are whole, so the last row the source handed out is the last row the client gets.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from os import sched_yield
from typing import Protocol

from ..sources import RowStream
from .chunker import Chunker, StreamCut
from .compression import GzipChunks

__all__ = [
    "ABORTED",
    "COMPLETED",
    "CUT",
    "ERROR",
    "STOP_KEY",
    "FanOut",
    "NullObserver",
    "StreamAborted",
    "StreamObserver",
    "TableStreamBody",
]

COMPLETED = "completed"
ABORTED = "client_aborted"
ERROR = "error"
CUT = "cut"  # ended by the server on purpose: shutdown grace over, or a client far too slow

STOP_KEY = "tablestream.stop"  # environ: the stream's Chunker.stop, for the watchdog to call

log = logging.getLogger(__name__)


class StreamAborted(RuntimeError):
    """Raised to waitress after the error marker so it cuts the connection mid-body."""


class StreamObserver(Protocol):
    """Told about a stream once per chunk, never per row (metrics and logs hang off this)."""

    def chunk_sent(self, nbytes: int, rows_read: int, uncompressed: int) -> None:
        """``nbytes`` went to the socket, ``uncompressed`` before content encoding."""

    def finished(self, outcome: str, rows_read: int) -> None: ...


class NullObserver:
    def chunk_sent(self, nbytes: int, rows_read: int, uncompressed: int) -> None:
        pass

    def finished(self, outcome: str, rows_read: int) -> None:
        pass


class FanOut:
    """Several observers seen as one (metrics and the request log both watch each stream)."""

    def __init__(self, observers: list[StreamObserver]) -> None:
        self._observers = observers

    def chunk_sent(self, nbytes: int, rows_read: int, uncompressed: int) -> None:
        for observer in self._observers:
            observer.chunk_sent(nbytes, rows_read, uncompressed)

    def finished(self, outcome: str, rows_read: int) -> None:
        for observer in self._observers:
            observer.finished(outcome, rows_read)


class TableStreamBody:
    """WSGI response iterable: ``pieces`` (a template stream over ``rows``) in byte chunks."""

    def __init__(
        self,
        pieces: Iterator[str],
        rows: RowStream,
        chunker: Chunker,
        *,
        error_marker: Callable[..., bytes],
        observer: StreamObserver | None = None,
        client_disconnected: Callable[[], bool] | None = None,
        encoder: GzipChunks | None = None,
        label: str = "",
        resume: Callable[[], str | None] | None = None,
    ) -> None:
        self._pieces = pieces
        self._rows = rows
        self._chunker = chunker
        self._observer = observer or NullObserver()
        self._client_disconnected = client_disconnected or _never
        self._error_marker = error_marker
        self._encoder = encoder
        self._label = label
        self._resume = resume or _nowhere
        self._outcome = ABORTED
        self._released = False
        self._gen = self._generate()

    def __iter__(self) -> Iterator[bytes]:
        return self._gen

    def close(self) -> None:
        """Called by the server when the response ends, whether or not it was iterated."""
        try:
            self._gen.close()
        finally:
            self._release()

    def _generate(self) -> Iterator[bytes]:
        observe = self._observer.chunk_sent
        rows = self._rows
        disconnected = self._client_disconnected
        encode = self._encoder.encode if self._encoder is not None else _as_is
        try:
            for chunk in self._chunker.chunks(self._pieces):
                sent = encode(chunk)
                yield sent
                observe(len(sent), rows.rows_read, len(chunk))
                if disconnected():
                    return
                # Let waitress's main loop take the channel's outbuf_lock: without this the
                # worker re-acquires it back to back and a vanished client went unnoticed for
                # ~5 s of wasted rendering (measured); with it, ~15 ms. One syscall per chunk:
                # sched_yield releases the GIL as sleep(0) did, in ~1 µs where sleep(0) took
                # ~80 µs (the kernel's timer slack), 0.3-0.7 µs a row at 32 KiB chunks.
                sched_yield()
            if self._encoder is not None:
                tail = self._encoder.finish()
                yield tail
                observe(len(tail), rows.rows_read, 0)
            self._outcome = COMPLETED
        except GeneratorExit:
            raise
        except Exception as exc:
            reason = ""
            if isinstance(exc, StreamCut):
                self._outcome, reason = CUT, str(exc)
                log.warning(
                    "stream %s cut after %d rows: %s; its error marker is queued",
                    self._label,
                    rows.rows_read,
                    reason,
                )
            else:
                self._outcome = ERROR
                log.exception(
                    "stream %s failed after %d rows; the client gets an error marker",
                    self._label,
                    rows.rows_read,
                )
            # The rows rendered before the failure (whole rows) go out first, then the marker
            # with the URL that continues after the last of them.
            resume = self._resume()
            marker = self._chunker.unsent + self._error_marker(rows.rows_read, reason, resume)
            sent = encode(marker)
            yield sent
            observe(len(sent), rows.rows_read, len(marker))
            raise StreamAborted(
                f"stream {self._label} cut after {rows.rows_read} rows: {type(exc).__name__}"
            ) from None
        finally:
            self._release()

    def _release(self) -> None:
        if self._released:
            return
        self._released = True
        if self._outcome == ABORTED and self._chunker.stop_reason:
            # The server asked it to stop, and the client was too slow to take even the rows
            # queued before the marker: still a cut, not the client's hang-up (deploys must not
            # look like client aborts).
            self._outcome = CUT
            log.warning(
                "stream %s cut after %d rows: %s; its error marker could not be sent (the "
                "client had not read what was queued before it)",
                self._label,
                self._rows.rows_read,
                self._chunker.stop_reason,
            )
        try:
            self._rows.close()
        finally:
            close_pieces = getattr(self._pieces, "close", None)
            try:
                if close_pieces is not None:
                    close_pieces()
            finally:
                self._observer.finished(self._outcome, self._rows.rows_read)


def _never() -> bool:
    return False


def _nowhere() -> str | None:
    return None


def _as_is(chunk: bytes) -> bytes:
    return chunk
