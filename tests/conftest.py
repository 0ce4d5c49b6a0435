"""Fixtures: real SQLite and CSV files, real waitress servers on 127.0.0.1, stopped after use."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tablestream import create_app
from tablestream.sources.demo import create_demo_db
from tablestream.testing import ServerProcess

from .servers import ThreadServer


def ndjson_values(row: Sequence[str], kinds: Sequence[str]) -> tuple[Any, ...]:
    """What typed NDJSON holds for a row of cell text of these kinds (docs/formats.md)."""
    convert: dict[str, Callable[[str], Any]] = {
        "integer": int,
        "real": float,
        "timestamp": lambda text: text.replace(" ", "T", 1),
    }
    return tuple(convert.get(k, str)(cell) for cell, k in zip(row, kinds, strict=True))


DEMO_ORDERS = 20_000
DEMO_CUSTOMERS = 500

NASTY = [
    "<script>alert(1)</script>",
    "say \"hi\" & 'bye'",
    "a < b > c",
    "&amp; already escaped?",
    "multi\nline",
    "ünïcödé ✓ 表",
]


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("db") / "demo.sqlite3"
    return create_demo_db(path, rows=DEMO_ORDERS, customers=DEMO_CUSTOMERS)


@pytest.fixture(scope="session")
def nasty_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("csv") / "nasty.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["n", "payload"])
        for i, payload in enumerate(NASTY):
            writer.writerow([i, payload])
    return path


@pytest.fixture
def settings_for(demo_db: Path, nasty_csv: Path) -> Callable[..., dict]:
    """Settings (as a mapping) pointing at the test data, with overrides."""

    def make(**overrides: object) -> dict:
        values = {"db": str(demo_db), "csv": f"nasty={nasty_csv}", "synthetic_rows": "2000000"}
        values.update({k: v if isinstance(v, str) else str(v) for k, v in overrides.items()})
        return values

    return make


@pytest.fixture
def app(settings_for):
    return create_app(settings_for())


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def thread_server() -> Iterator[Callable[..., ThreadServer]]:
    """Start waitress in a thread around a given app; stopped at the end of the test."""
    started: list[ThreadServer] = []

    def start(app, **options) -> ThreadServer:
        server = ThreadServer(app, options)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def process_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start `tablestream serve` as a process with the given env; stopped at the end."""
    started: list[ServerProcess] = []

    def start(args: tuple[str, ...] = (), **env: str) -> ServerProcess:
        server = ServerProcess(env, tmp_path / f"server-{len(started)}.log", args=args)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
