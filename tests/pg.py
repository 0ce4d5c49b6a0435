"""The project's PostgreSQL for tests: its DSN, and an admin connection or a clear skip/fail.

Every machine of the project runs PostgreSQL at 127.0.0.1:5432 (user postgres, database test,
trust); CI must have it, so there a missing server fails the test instead of skipping it.
"""

from __future__ import annotations

import os

import psycopg
import pytest

__all__ = ["DSN", "PG_PORT", "admin_connection"]

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
