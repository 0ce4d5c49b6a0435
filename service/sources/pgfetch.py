"""The next ``FETCH`` of a server-side cursor is in flight while the current batch renders.

``cursor.fetchmany`` is a round trip: send ``FETCH FORWARD n``, wait while the backend computes
the rows (with ``pgtext``, also their text), read them. The stream renders nothing during that
wait and the backend computes nothing while the stream renders, so each fetch costs the sum of
both. Here the next ``FETCH`` is sent (libpq's asynchronous ``send_query``) as soon as a full
batch has been read, before that batch is handed on: the backend, on the other core, writes
the next rows into the socket while this process renders, and the next call finds them there.
No thread is involved (a fetch-ahead thread was measured slower: the GIL hand-offs cost more
than the wait they hide, docs/performance.md).

At most one ``FETCH`` is ahead, so the stream holds one more fetch of rows, in the socket and
libpq's buffer, than before; ``drain`` reads it before the cursor is closed. Rows are loaded by
psycopg's own C transformer with the cursor's adapters, so they are what ``fetchmany`` gives.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import errors, generators, pq, sql
from psycopg.adapt import Transformer
from psycopg.pq.abc import PGresult

__all__ = ["FetchAhead"]


class FetchAhead:
    """``fetchmany(size)`` over the server-side ``cursor``, one ``FETCH`` ahead."""

    def __init__(self, conn: psycopg.Connection, cursor: psycopg.ServerCursor) -> None:
        self._conn = conn
        self._cursor_sql = sql.Identifier(cursor.name).as_bytes(conn)
        self._transformer = Transformer(cursor)
        self._pending: int | None = None  # the size of the FETCH in flight, if one is

    def _send(self, size: int) -> None:
        pgconn = self._conn.pgconn
        pgconn.send_query(b"FETCH FORWARD %d FROM %s" % (size, self._cursor_sql))
        self._conn.wait(generators.send(pgconn))
        self._pending = size

    def _receive(self) -> PGresult:
        self._pending = None
        results = self._conn.wait(generators.fetch_many(self._conn.pgconn))
        for result in results:
            if result.status != pq.ExecStatus.TUPLES_OK:
                raise errors.error_from_result(result, encoding=self._conn.info.encoding)
        return results[-1]

    def fetchmany(self, size: int) -> list[Any]:
        """The next ``size`` rows at most (an empty list at the end), as ``fetchmany``."""
        with self._conn.lock:
            if self._pending is None:
                self._send(size)
            asked = self._pending
            result = self._receive()
            if result.ntuples == asked:  # a short fetch is the last one
                self._send(size)
            transformer = self._transformer
            transformer.set_pgresult(result)
            return transformer.load_rows(0, result.ntuples, tuple)

    def drain(self) -> None:
        """Read the ``FETCH`` still in flight, so the connection can run the next command."""
        if self._pending is not None:
            with self._conn.lock:
                self._receive()
