"""A server-side cursor read one FETCH ahead gives the rows, and the errors, fetchmany gives.

``sources.pgfetch.FetchAhead`` sends the next FETCH before the current batch is handed on; a
stream that ends early must leave the connection able to run its next command. Needs the
PostgreSQL of test_postgres.py.
"""

from __future__ import annotations

import secrets

import pytest

psycopg = pytest.importorskip("psycopg")

from .pg import admin_connection  # noqa: E402

pytestmark = pytest.mark.postgres

from tablestream.sources.pgfetch import FetchAhead  # noqa: E402


@pytest.fixture
def conn():
    with admin_connection() as admin:
        admin.autocommit = False
        yield admin
        admin.rollback()


def _query(rows: int) -> str:
    return (
        "SELECT i, 'row ' || i AS t, CASE WHEN i % 3 = 0 THEN NULL ELSE i * 1.5 END AS n, "
        f"now()::date + i AS d FROM generate_series(1, {rows}) AS i"
    )


def _cursor(conn, sql: str):
    cursor = conn.cursor(name=f"ahead_{secrets.token_hex(4)}")
    cursor.execute(sql)
    return cursor


@pytest.mark.parametrize("rows, size", [(0, 10), (7, 10), (30, 10), (1000, 256), (1, 1)])
def test_fetching_ahead_gives_the_batches_fetchmany_gives(conn, rows, size):
    expected = []
    cursor = _cursor(conn, _query(rows))
    while batch := cursor.fetchmany(size):
        expected.append(batch)
    cursor.close()

    ahead = FetchAhead(conn, cursor := _cursor(conn, _query(rows)))
    got = []
    while batch := ahead.fetchmany(size):
        got.append(batch)
    assert got == expected
    assert ahead.fetchmany(size) == []
    cursor.close()


def test_a_stream_closed_with_a_fetch_in_flight_leaves_the_connection_usable(conn):
    cursor = _cursor(conn, _query(10_000))
    ahead = FetchAhead(conn, cursor)
    assert len(ahead.fetchmany(256)) == 256  # the next FETCH is now in flight
    ahead.drain()
    cursor.close()
    assert conn.execute("SELECT 41 + 1").fetchone() == (42,)


def test_an_error_in_a_later_fetch_is_raised_as_fetchmany_raises_it(conn):
    sql = "SELECT 100 / (300 - i) AS q FROM generate_series(1, 1000) AS i"
    cursor = _cursor(conn, sql)
    ahead = FetchAhead(conn, cursor)
    assert len(ahead.fetchmany(256)) == 256
    with pytest.raises(psycopg.errors.DivisionByZero):
        ahead.fetchmany(256)
    conn.rollback()
    cursor.close()
    assert conn.execute("SELECT 41 + 1").fetchone() == (42,)
