"""The benchmark's data: the demo orders in a SQLite file and in PostgreSQL, and one signing
secret for every bench server (phase G, ``bench/sources.py``; the engines' exports,
``bench/exports.py``). Made on first use under ``runs/bench-data/`` and kept."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from tablestream.sources.demo import create_demo_db, create_demo_pg

__all__ = [
    "DATA_ROWS",
    "PG_DSN",
    "PG_SCHEMA",
    "PG_SERVE_DSN",
    "postgres",
    "secret_file",
    "sqlite_file",
]

PG_DSN = os.environ.get("BENCH_PG_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=test")
PG_SCHEMA = "tablestream_bench"
# Every scan from the table's first block: with synchronized scans (PostgreSQL's default) a
# scan starts where another one is, so a LIMIT without ORDER BY returns other rows each time
# and the byte-for-byte check would compare different rows.
PG_SERVE_DSN = f"{PG_DSN} options='-c synchronize_seqscans=off'"
DATA_ROWS = 1_000_000  # the bench's orders tables; a stream reads ``?limit=`` of them


def sqlite_file() -> Path:
    path = Path("runs/bench-data") / f"orders-{DATA_ROWS}.sqlite3"
    if not path.exists():
        print(f"  writing the demo database with {DATA_ROWS:,} orders to {path}", flush=True)
        create_demo_db(path, DATA_ROWS)
    return path


def postgres() -> str:
    """'' when ``tablestream_bench.pg_orders`` holds the bench's orders, else why it cannot."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install 'tablestream[pg]')"
    try:
        conn = psycopg.connect(PG_DSN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        return f"PostgreSQL at {PG_DSN!r} is not reachable: {str(exc).strip()}"
    with conn:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {PG_SCHEMA}")
        exists = conn.execute(f"SELECT to_regclass('{PG_SCHEMA}.orders')").fetchone()
        count = 0
        if exists and exists[0]:
            count = conn.execute(f"SELECT count(*) FROM {PG_SCHEMA}.orders").fetchone()[0]
        if count != DATA_ROWS:
            print(f"  loading {DATA_ROWS:,} orders into PostgreSQL ({PG_SCHEMA})", flush=True)
            conn.execute(f"DROP VIEW IF EXISTS {PG_SCHEMA}.pg_orders")
            create_demo_pg(f"{PG_DSN} options='-csearch_path={PG_SCHEMA}'", DATA_ROWS)
        conn.execute(
            f"CREATE OR REPLACE VIEW {PG_SCHEMA}.pg_orders AS SELECT * FROM {PG_SCHEMA}.orders"
        )
    return ""


def secret_file() -> Path:
    """One signing secret for both servers: each would otherwise make its own, and the pages'
    "next rows" links (``_after`` tokens) would differ between the new and the before server."""
    path = Path("runs/bench-data/secret")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32) + "\n")
    return path
