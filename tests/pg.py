"""The project's PostgreSQL for tests: its DSN, and an admin connection or a clear skip/fail.

Every machine of the project runs PostgreSQL at 127.0.0.1:5432 (user postgres, database test,
trust); CI must have it, so there a missing server fails the test instead of skipping it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

__all__ = [
    "DSN",
    "PG_PORT",
    "admin_connection",
    "cli_demo_schema",
    "copy_demo_orders",
    "scratch_schema",
]

DSN = os.environ.get(
    "TABLESTREAM_TEST_PG_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=test"
)
PG_PORT = int(psycopg.conninfo.conninfo_to_dict(DSN).get("port") or 5432)


def admin_connection() -> psycopg.Connection:
    """An autocommit connection to the test database; fails in CI, skips elsewhere, if none."""
    try:
        return psycopg.connect(DSN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"PostgreSQL must run in CI at {DSN}: {exc}")
        pytest.skip(f"no PostgreSQL at {DSN}: {exc}")


@contextlib.contextmanager
def scratch_schema(prefix: str) -> Iterator[tuple[psycopg.Connection, str]]:
    """An admin connection and a new schema named ``prefix`` and a random suffix, dropped with
    everything in it at the end (a module's tables, never another run's)."""
    admin = admin_connection()
    name = f"{prefix}_{secrets.token_hex(4)}"
    admin.execute(f"CREATE SCHEMA {name}")
    try:
        yield admin, name
    finally:
        admin.execute(f"DROP SCHEMA {name} CASCADE")
        admin.close()


def copy_demo_orders(admin: psycopg.Connection, schema: str, demo_db: Path) -> None:
    """``schema.orders``: the demo SQLite file's orders, copied row for row (no index beyond
    the key; callers add theirs, then ``ANALYZE``)."""
    admin.execute(
        f"""CREATE TABLE {schema}.orders (
            id integer PRIMARY KEY, customer_id integer NOT NULL, product text NOT NULL,
            quantity integer NOT NULL, total double precision NOT NULL, placed_at text NOT NULL,
            status text NOT NULL, note text)"""
    )
    db = sqlite3.connect(demo_db)
    try:
        with admin.cursor() as cur, cur.copy(f"COPY {schema}.orders FROM STDIN") as copy:
            for row in db.execute("SELECT * FROM orders"):
                copy.write_row(row)
    finally:
        db.close()


@contextlib.contextmanager
def cli_demo_schema(
    prefix: str, orders: int, customers: int
) -> Iterator[tuple[psycopg.Connection, str]]:
    """The demo loaded by the real CLI, ``tablestream demo-db --dsn``, into a scratch schema (its
    ``search_path``): the demo's own column types, indexes and GIN search index."""
    with scratch_schema(prefix) as (admin, schema):
        dsn = f"{DSN} options='-c search_path={schema}'"
        subprocess.run(
            [sys.executable, "-m", "tablestream", "demo-db", "--dsn", dsn,
             "--rows", str(orders), "--customers", str(customers)],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        yield admin, schema
