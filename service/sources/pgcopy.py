"""CSV of a PostgreSQL table written by PostgreSQL: ``COPY (SELECT …) TO STDOUT (FORMAT csv)``.

Read through the cursor, a CSV stream of the bench's ``pg_orders`` spent ~73% of its time
waiting for the backend's next ``FETCH`` (py-spy): the backend, not this process, was the
limit, at 640-850k rows/s fetched. ``COPY`` of the same query hands out ~1.1M rows/s (one
message a row, no round trips, no result sets), each row already a CSV line, so no cell is
touched here: a batch's lines are joined, given CRLF ends and decoded in one go.

The bytes are those the csv module (``stream/csvnulls.py``) writes for the same rows, by
construction and by ``tests/test_pg_copy.py`` (every type, every NULL spelling, cells with
commas, quotes, CR, LF, the NULL words):

- cells: the same text as the cursor's (``pgtext``), NULL kept; a column whose type's own
  output is that text is selected bare (``copy_select``): no expression per row;
- quoting: PostgreSQL quotes a field with a comma, a quote, CR or LF and doubles its quotes, as
  the csv module does, and also a field equal to the NULL string: exactly the rule of
  ``?null=copy``, ``\\N`` and ``NULL``. For ``empty`` (NULL and the empty string both an
  unquoted empty field) a column whose text can be empty is selected as ``NULLIF(…, '')``;
- line ends: PostgreSQL writes LF, CSV here is CRLF. A batch whose LFs are exactly its line ends
  (no cell holds a line break) is mended with one replace, any other by its quotes
  (``_crlf_outside_quotes``);
- one-column tables are not copied: there PostgreSQL quotes a lone ``\\.`` and the csv module a
  lone empty field, so csvnulls writes them as before.

A stream stopped before its COPY ends (client gone, cut) closes its connection: a COPY cannot be
left half-read on a connection, and the pool replaces a closed one.
"""

from __future__ import annotations

import select
import time
from collections.abc import Iterator

import psycopg
from psycopg import errors, generators, pq, sql
from psycopg.abc import PQGen
from psycopg.waiting import Wait

__all__ = ["CopyOut", "copy_statement"]


def copy_statement(query: str, marker: str) -> sql.Composed:
    """``COPY (query) TO STDOUT`` as CSV with NULL written as ``marker``; ``query`` is whole
    SQL text (its values already bound client-side: COPY takes no parameters)."""
    return sql.SQL("COPY ({}) TO STDOUT (FORMAT csv, NULL {})").format(
        sql.SQL(query), sql.Literal(marker)
    )


def _more_input(pgconn: pq.abc.PGconn) -> PQGen[None]:
    """Wait until the socket has more of the COPY, then read it into libpq's buffer."""
    while not (yield Wait.R):
        continue
    pgconn.consume_input()


class CopyOut:
    """One ``COPY … TO STDOUT`` on ``conn``, read a batch of CSV lines at a time.

    ``first_row_within`` seconds (``deadline.py``; 0: no limit): the first row must come by
    then, or the COPY is cancelled and ``QueryCanceled`` raised. Only the wait before rows flow
    is bounded: ``statement_timeout`` cannot do that for a COPY (it would bound the whole
    stream, and no ``SET`` reaches the connection until the COPY ends), so the wait is ours."""

    def __init__(
        self, conn: psycopg.Connection, statement: bytes, first_row_within: float = 0.0
    ) -> None:
        self._conn = conn
        self._codec = conn.info.encoding
        self.done = False  # the server said the COPY is complete
        self._head = bytearray()  # the first row, read while it was awaited
        with conn.lock:
            pgconn = conn.pgconn
            pgconn.send_query(statement)
            if first_row_within <= 0:
                results = conn.wait(generators.execute(pgconn))
            else:
                conn.wait(generators.send(pgconn))
                # The backend sends its "COPY starts" with the first rows, not before.
                deadline = time.monotonic() + first_row_within
                results = self._results_by(deadline)
        if results is None:
            self._cancel(first_row_within, started=False)
        elif results[-1].status != pq.ExecStatus.COPY_OUT:
            raise errors.error_from_result(results[-1], encoding=self._codec)
        elif first_row_within > 0 and not self._first_row_by(deadline):
            self._cancel(first_row_within, started=True)

    def _results_by(self, deadline: float) -> list | None:
        """The statement's results once the server sent them, None if not by ``deadline``."""
        pgconn = self._conn.pgconn
        while pgconn.is_busy():
            left = deadline - time.monotonic()
            if left <= 0 or not _readable(pgconn.socket, left):
                return None
            pgconn.consume_input()
        return self._conn.wait(generators.fetch_many(pgconn))

    def _first_row_by(self, deadline: float) -> bool:
        """The first row (or the COPY's end) read by ``deadline``: whether it came."""
        pgconn = self._conn.pgconn
        with self._conn.lock:
            while (got := pgconn.get_copy_data(1))[0] == 0:
                left = deadline - time.monotonic()
                if left <= 0 or not _readable(pgconn.socket, left):
                    return False
                pgconn.consume_input()
            if got[0] > 0:
                self._head += got[1]
            else:
                self._finish()
        return True

    def _cancel(self, seconds: float, started: bool) -> None:
        """Cancel the COPY, read what the server sent before its error, raise."""
        self._conn.cancel_safe(timeout=5)
        if not started:
            with self._conn.lock:
                results = self._conn.wait(generators.fetch_many(self._conn.pgconn))
            if results[-1].status != pq.ExecStatus.COPY_OUT:
                raise errors.error_from_result(results[-1], encoding=self._codec)
        for _ in self.batches(1024):  # rows sent before the cancel landed; its error ends them
            pass
        raise errors.QueryCanceled(f"the COPY sent no first row within {seconds:.3f} s")

    def batches(self, rows: int) -> Iterator[tuple[str, int]]:
        """(CSV text with CRLF line ends, its number of lines), ``rows`` lines at most each."""
        conn = self._conn
        get = conn.pgconn.get_copy_data
        while not self.done:
            # Each row is copied into the batch at once: a row's memoryview keeps libpq's buffer
            # alive, and holding 512 of them to join cost ~0.25 µs a row more (the bench's orders).
            blob, self._head = self._head, bytearray()
            count = 1 if blob else 0
            with conn.lock:
                while count < rows:
                    nbytes, data = get(1)  # one row, or 0 when libpq holds no whole row yet
                    if nbytes > 0:
                        blob += data
                        count += 1
                    elif nbytes == 0:
                        conn.wait(_more_input(conn.pgconn))
                    else:  # -1: the COPY is over; its result says how
                        self._finish()
                        break
            if count:
                yield self._text(blob, count), count

    def _finish(self) -> None:
        results = self._conn.wait(generators.fetch_many(self._conn.pgconn))
        self.done = True
        if results and results[-1].status != pq.ExecStatus.COMMAND_OK:
            raise errors.error_from_result(results[-1], encoding=self._codec)

    def _text(self, blob: bytearray, lines: int) -> str:
        if blob.count(b"\n") == lines:  # no cell holds a line break
            return blob.replace(b"\n", b"\r\n").decode(self._codec)
        return _crlf_outside_quotes(bytes(blob)).decode(self._codec)


def _readable(fd: int, seconds: float) -> bool:
    """Whether ``fd`` has input within ``seconds`` (poll: any descriptor number)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(max(1, round(seconds * 1000))))


def _crlf_outside_quotes(blob: bytes) -> bytes:
    """CRLF for the LFs that end lines, LF kept inside quoted cells: a line break inside a cell
    always is (CSV quotes such a cell), and a quote toggles in and out of one (a doubled quote
    inside a cell toggles twice)."""
    pieces = blob.split(b"\n")
    quoted = False
    out = []
    for piece in pieces[:-1]:
        if piece.count(b'"') % 2:
            quoted = not quoted
        out.append(piece + (b"\n" if quoted else b"\r\n"))
    return b"".join(out)
