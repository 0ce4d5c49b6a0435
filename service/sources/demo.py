"""The demo database: realistic customers and orders, deterministic, written atomically.

``make run`` needs something worth streaming on a fresh machine. The same rows go to SQLite
and to PostgreSQL, declared so that each source types them alike in NDJSON: the dates as
``TIMESTAMP`` on both (SQLite's text in its ``datetime()`` form, which typed NDJSON writes with
a ``T`` for a column so declared; in SQLite ``TIMESTAMP TEXT``, whose TEXT affinity keeps
filters comparing as text: ``placed_at__lt=2024`` means before 2024, where plain ``TIMESTAMP``'s
NUMERIC affinity compared the value 2024 as a number and matched nothing), the totals as SQLite
``REAL`` and PostgreSQL ``numeric`` (both JSON numbers). The file is built under a
temporary name and renamed into place only when complete, so an interrupted build never leaves
a half-filled database that looks like a real one.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path

__all__ = ["create_demo_db", "create_demo_pg"]

_FIRST = [
    "Ada",
    "Grace",
    "Alan",
    "Edsger",
    "Barbara",
    "Donald",
    "Frances",
    "Ken",
    "Margaret",
    "Dennis",
    "Chloé",
    "Søren",
    "Zoë",
    "Renée",
    "Jürgen",
    "Nasrin",
    "Kwame",
    "Mei",
]
_LAST = [
    "Lovelace",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Allen",
    "Thompson",
    "Hamilton",
    "Ritchie",
    "O'Neil",
    "Smith & Wesson",
    "<Unknown>",
    "Ng",
    "Okonkwo",
]
_CITIES = ["Berlin", "Lagos", "Lima", "Osaka", "Toronto", "Kraków", "São Paulo", "Pune"]
_PRODUCTS = [
    "Widget",
    "Gadget",
    "Sprocket",
    "Gizmo",
    "Doohickey",
    "Thingamajig",
    'Cable "3m"',
    "Adapter <USB-C>",
]
_STATUS = ["pending", "paid", "shipped", "delivered", "refunded", "cancelled"]
_START = dt.datetime(2023, 1, 1)


DEMO_APPLICATION_ID = 0x74736D74  # "tsmt"
"""Written into the demo database's header (``PRAGMA application_id``): the demo's own row
templates (templates/tables/demo/) apply to its tables only, never to a user's table that
happens to be called ``orders``."""

DEMO_INDEXES = """
CREATE INDEX orders_customer_id ON orders (customer_id);
CREATE INDEX orders_status ON orders (status);
"""
"""What a real database of orders would have for the filters people use most: one customer's
orders (?customer_id=42, first byte in a few ms on 1M rows) and orders by status. A sort on
``total`` has no index on purpose: the database sorts it (on disk for SQLite, see
docs/queries.md), which is what an unindexed sort costs on a real table."""


DEMO_SEARCH_SQLITE = """
CREATE VIRTUAL TABLE orders_fts USING fts5(product, note, content='orders', content_rowid='id');
INSERT INTO orders_fts(orders_fts) VALUES ('rebuild');
"""
DEMO_SEARCH_PG = """
CREATE INDEX orders_search ON orders
    USING gin (to_tsvector('english', product || ' ' || coalesce(note, '')));
"""
"""The full-text indexes ``?_search=`` finds (``sources/search.py``): an FTS5 table with the
orders as its content in SQLite (+1.6 s on 1M rows, 92 → 110 MB), a GIN index in PostgreSQL,
both over ``product`` and ``note``."""


def _customers(rng: random.Random, n: int) -> Iterator[tuple]:
    for i in range(1, n + 1):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        email = f"{first.lower()}.{i}@example.org".encode("ascii", "ignore").decode()
        signed_up = _START + dt.timedelta(minutes=rng.randrange(0, 60 * 24 * 365))
        yield (i, f"{first} {last}", email, rng.choice(_CITIES), signed_up.isoformat(" "))


def _orders(rng: random.Random, n: int, customers: int) -> Iterator[tuple]:
    for i in range(1, n + 1):
        placed = _START + dt.timedelta(seconds=i * 29 + rng.randrange(0, 29))
        quantity = rng.randint(1, 9)
        unit_cents = rng.randrange(199, 99_999)
        yield (
            i,
            rng.randint(1, customers),
            rng.choice(_PRODUCTS),
            quantity,
            round(quantity * unit_cents / 100, 2),
            placed.isoformat(" "),
            rng.choice(_STATUS),
            None if rng.random() < 0.7 else rng.choice(["gift", "rush", "fragile & heavy"]),
        )


def create_demo_db(
    path: str | os.PathLike[str], rows: int, customers: int = 10_000, seed: int = 1
) -> Path:
    """Write ``rows`` orders and ``customers`` customers to a new SQLite file at ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    rng = random.Random(seed)
    customers = max(1, min(customers, max(rows, 1)))
    conn = sqlite3.connect(partial)
    try:
        conn.executescript(
            """
            PRAGMA application_id = 1953721716;  -- DEMO_APPLICATION_ID
            PRAGMA journal_mode = OFF;
            PRAGMA synchronous = OFF;
            CREATE TABLE customers (
                id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL,
                city TEXT NOT NULL, signed_up TIMESTAMP TEXT NOT NULL);
            CREATE TABLE orders (
                id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id),
                product TEXT NOT NULL, quantity INTEGER NOT NULL, total REAL NOT NULL,
                placed_at TIMESTAMP TEXT NOT NULL, status TEXT NOT NULL, note TEXT);
            """
        )
        conn.executemany("INSERT INTO customers VALUES (?, ?, ?, ?, ?)", _customers(rng, customers))
        conn.executemany(
            "INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?)", _orders(rng, rows, customers)
        )
        conn.executescript(DEMO_INDEXES)
        conn.executescript(DEMO_SEARCH_SQLITE)
        conn.commit()
    finally:
        conn.close()
    os.replace(partial, target)
    return target


def create_demo_pg(dsn: str, rows: int, customers: int = 10_000, seed: int = 1) -> None:
    """Load the same demo data into PostgreSQL (``public.customers``, ``public.orders``).

    One transaction: the old tables are replaced only when the new ones are complete.
    """
    import psycopg

    rng = random.Random(seed)
    customers = max(1, min(customers, max(rows, 1)))
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(
            """
            DROP TABLE IF EXISTS orders, customers;
            CREATE TABLE customers (
                id integer PRIMARY KEY, name text NOT NULL, email text NOT NULL,
                city text NOT NULL, signed_up timestamp NOT NULL);
            CREATE TABLE orders (
                id integer PRIMARY KEY, customer_id integer NOT NULL REFERENCES customers(id),
                product text NOT NULL, quantity integer NOT NULL, total numeric(12, 2) NOT NULL,
                placed_at timestamp NOT NULL, status text NOT NULL, note text);
            """
        )
        with cur.copy("COPY customers FROM STDIN") as copy:
            for row in _customers(rng, customers):
                copy.write_row(row)
        with cur.copy("COPY orders FROM STDIN") as copy:
            for row in _orders(rng, rows, customers):
                copy.write_row(row)
        cur.execute(DEMO_INDEXES)
        cur.execute(DEMO_SEARCH_PG)
