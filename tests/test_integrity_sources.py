"""A complete-looking table is a correct table: one snapshot per stream, bad cells cost no rows.

Real SQLite and CSV files made here, real servers from tests/servers.py. A database rewritten in
place under running streams ends every one with the error marker; one renamed over the path
lets them finish from the old file while new requests see the new one.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tablestream import create_app
from tablestream.sources.base import unique_columns
from tablestream.sources.demo import create_demo_db
from tablestream.testing import httpraw

from .servers import ROOT
from .tablehtml import parse_table

OLD_ROWS = 200_000  # several MB in every format: far more than the socket and output buffers
NEW_ROWS = 150_000
SMALL_BUFFERS = {
    "TABLESTREAM_OUTBUF_HIGH_WATERMARK": "65536",
    "TABLESTREAM_OUTBUF_OVERFLOW": "65536",
    "TABLESTREAM_SYNTHETIC_ROWS": "0",
    "TABLESTREAM_GZIP": "false",
}


@pytest.fixture(scope="module")
def databases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The 'old' demo database; a 'same_size' one (other data, same shape); a 'smaller' one."""
    folder = tmp_path_factory.mktemp("replace")
    return {
        "old": create_demo_db(folder / "old.sqlite3", rows=OLD_ROWS, customers=500, seed=1),
        "same_size": create_demo_db(folder / "same.sqlite3", rows=OLD_ROWS, customers=500, seed=2),
        "smaller": create_demo_db(folder / "new.sqlite3", rows=NEW_ROWS, customers=400, seed=2),
    }


class PausedStream:
    """A GET whose client reads the first bytes, then waits for ``resume`` before the rest."""

    def __init__(self, url: str, first_bytes: int = 65536) -> None:
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        self.conn.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""))
        self.response = self.conn.getresponse()
        self.status = self.response.status
        self.body = self.response.read(first_bytes)
        self.complete = False  # the terminating chunk arrived

    def finish(self) -> str:
        try:
            self.body += self.response.read()
            self.complete = True
        except http.client.IncompleteRead as exc:
            self.body += exc.partial
        finally:
            self.conn.close()
        return self.body.decode("utf-8")


def _ids(text: str, fmt: str) -> list[int]:
    if fmt == "html":  # the first cell of each body row, with or without a row template
        return [int(n) for n in re.findall(r"<tr[^>]*><td[^>]*>([0-9]+)</td>", text)]
    lines = [line for line in text.splitlines() if line]
    if fmt == "csv":
        return [int(line.split(",")[0]) for line in lines[1:] if not line.startswith("#")]
    return [int(json.loads(line)["id"]) for line in lines if "tablestream_error" not in line]


def _read_all_concurrently(streams: list[PausedStream]) -> list[str]:
    bodies: list[str] = [""] * len(streams)

    def finish(i: int) -> None:
        bodies[i] = streams[i].finish()

    threads = [threading.Thread(target=finish, args=(i,)) for i in range(len(streams))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    return bodies


FOUR_STREAMS = ["orders", "orders.csv", "orders.ndjson", "orders.csv?limit=190000"]


@pytest.mark.slow
@pytest.mark.parametrize("replacement", ["same_size", "smaller"])
def test_a_database_overwritten_in_place_ends_every_running_stream_with_the_error_marker(
    process_server, databases, tmp_path, replacement
):
    old, new = databases["old"], databases[replacement]
    live = tmp_path / "live.sqlite3"
    shutil.copyfile(old, live)
    server = process_server(TABLESTREAM_DB=str(live), **SMALL_BUFFERS)
    streams = [PausedStream(f"{server.url}/tables/{path}") for path in FOUR_STREAMS]
    assert [s.status for s in streams] == [200] * 4
    with open(new, "rb") as src, open(live, "wb") as dst:  # in place, as cp does: same inode
        shutil.copyfileobj(src, dst)
    bodies = _read_all_concurrently(streams)

    footers = sum('id="ts-complete"' in body for body in bodies)
    markers = sum("tablestream:error" in body or "tablestream_error" in body for body in bodies)
    assert (footers, markers) == (0, 4)
    assert not any(s.complete for s in streams), "a cut stream has no terminating chunk"
    for path, body in zip(FOUR_STREAMS, bodies, strict=True):
        fmt = "csv" if ".csv" in path else "ndjson" if ".ndjson" in path else "html"
        ids = _ids(body, fmt)
        # Only rows of the old file, in order: nothing read after the rewrite was handed on.
        assert ids == list(range(1, len(ids) + 1)), path
    log = (tmp_path / "server-0.log").read_text()
    assert "the database file changed under the stream" in log


@pytest.mark.slow
def test_a_database_renamed_over_lets_running_streams_finish_from_the_old_file(
    process_server, databases, tmp_path
):
    old, new = databases["old"], databases["smaller"]
    live = tmp_path / "live.sqlite3"
    shutil.copyfile(old, live)
    server = process_server(TABLESTREAM_DB=str(live), **SMALL_BUFFERS)
    in_flight = [PausedStream(f"{server.url}/tables/{path}") for path in FOUR_STREAMS[:3]]
    staged = tmp_path / "live.sqlite3.new"
    shutil.copyfile(new, staged)
    os.replace(staged, live)  # the safe way: a new inode under the same name
    after = httpraw.get(f"{server.url}/tables/orders.csv", keep=False)
    bodies = _read_all_concurrently(in_flight)

    assert all(s.complete for s in in_flight)
    html, csv_text, ndjson = bodies
    assert f'id="ts-complete" data-rows-sent="{OLD_ROWS}"' in html[-2000:]
    for text, fmt in ((html, "html"), (csv_text, "csv"), (ndjson, "ndjson")):
        assert _ids(text, fmt) == list(range(1, OLD_ROWS + 1)), fmt
    assert after.terminated and after.tail.endswith(b"\r\n")
    assert after.tail.splitlines()[-1].split(b",")[0] == str(NEW_ROWS).encode()


@pytest.mark.slow
def test_a_writer_committing_to_a_wal_database_does_not_fail_a_running_stream(
    thread_server, tmp_path
):
    path = create_demo_db(tmp_path / "wal.sqlite3", rows=OLD_ROWS, customers=500)
    writer = sqlite3.connect(path)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("INSERT INTO customers (name, email, city, signed_up) VALUES ('a','b','c','d')")
    writer.commit()
    app = create_app({"db": str(path), "synthetic_rows": "0", "gzip": "false",
                      "outbuf_high_watermark": "65536", "outbuf_overflow": "65536"})  # fmt: skip
    server = thread_server(app)
    stream = PausedStream(f"{server.url}/tables/orders.csv")
    written = os.stat(path).st_mtime_ns
    for n in range(3):  # commits after the snapshot, each copied into the file by a checkpoint
        writer.execute("DELETE FROM orders WHERE id > ?", (OLD_ROWS - 1000 * (n + 1),))
        writer.commit()
        writer.execute("PRAGMA wal_checkpoint(PASSIVE)")
    assert os.stat(path).st_mtime_ns != written, "a checkpoint wrote the file during the stream"
    text = stream.finish()
    writer.close()
    assert stream.complete and "tablestream:error" not in text
    assert _ids(text, "csv") == list(range(1, OLD_ROWS + 1))


@pytest.fixture(scope="module")
def undecodable_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10,000 rows; the TEXT cell of row 3,001 holds bytes that are not UTF-8."""
    path = tmp_path_factory.mktemp("utf8") / "bad.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, note TEXT)")
        conn.executemany(
            "INSERT INTO notes VALUES (?, ?)", ((i, f"note {i}") for i in range(1, 10_001))
        )
        conn.execute("UPDATE notes SET note = CAST(x'6f6bff41' AS TEXT) WHERE id = 3001")
    conn.close()
    return path


@pytest.mark.parametrize("fmt", ["html", "csv", "ndjson"])
def test_an_undecodable_text_cell_is_shown_with_replacement_characters_and_costs_no_rows(
    thread_server, undecodable_db, fmt
):
    app = create_app({"db": str(undecodable_db), "synthetic_rows": "0", "gzip": "false"})
    server = thread_server(app)
    response = httpraw.get(f"{server.url}/tables/notes.{fmt}")
    assert response.status == 200 and response.terminated
    text = response.text
    if fmt == "html":
        table = parse_table(text)
        assert table.rows_sent == 10_000 and len(table.rows) == 10_000
        assert table.rows[3000] == ["3001", "ok\ufffdA"] and table.rows[3001][1] == "note 3002"
    elif fmt == "csv":
        lines = text.split("\r\n")[:-1]
        assert len(lines) == 10_001
        assert lines[3001] == "3001,ok\ufffdA" and lines[-1] == "10000,note 10000"
    else:
        lines = text.splitlines()
        assert len(lines) == 10_000
        assert json.loads(lines[3000]) == {"id": 3001, "note": "ok\ufffdA"}
        assert json.loads(lines[-1]) == {"id": 10000, "note": "note 10000"}


def test_an_undecodable_cell_after_an_offset_keeps_the_rows_in_order(undecodable_db):
    app = create_app({"db": str(undecodable_db), "synthetic_rows": "0", "fetch_rows": "700"})
    with app.extensions["tablestream"].catalog["notes"].open(limit=5000, offset=100) as rows:
        got = [row for batch in rows.batches() for row in batch]
    assert [int(r[0]) for r in got] == list(range(101, 5101))
    assert got[2900] == ("3001", "ok\ufffdA")


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    import csv

    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_csv_fields_larger_than_the_csv_module_default_are_read(thread_server, tmp_path):
    big = "x" * (512 * 1024)  # 4x the csv module's own limit of 128 KiB
    path = _write_csv(tmp_path / "big.csv", ["id", "blob"], [["1", "a"], ["2", big], ["3", "c"]])
    app = create_app({"db": "", "synthetic_rows": "0", "csv": f"big={path}"})
    server = thread_server(app)
    response = httpraw.get(f"{server.url}/tables/big.ndjson")
    assert response.terminated
    rows = [json.loads(line) for line in response.text.splitlines()]
    assert [r["id"] for r in rows] == ["1", "2", "3"] and rows[1]["blob"] == big


def test_a_csv_field_over_the_limit_ends_the_stream_with_an_error_naming_the_row(
    thread_server, tmp_path, caplog
):
    rows = [[str(i), "ok"] for i in range(1, 301)]
    rows[250][1] = "y" * 5000  # data row 251
    path = _write_csv(tmp_path / "long.csv", ["id", "text"], rows)
    app = create_app({"db": "", "synthetic_rows": "0", "gzip": "false",
                      "csv": f"long={path}", "csv_field_limit": "4096"})  # fmt: skip
    server = thread_server(app)
    with caplog.at_level(logging.ERROR):
        response = httpraw.get(f"{server.url}/tables/long.csv")
    assert not response.terminated
    lines = response.text.split("\r\n")
    assert lines[1:251] == [f"{i},ok" for i in range(1, 251)]  # every earlier row, whole
    assert "# tablestream:error after 250 rows" in response.text
    logged = "\n".join(r.getMessage() + str(r.exc_info and r.exc_info[1]) for r in caplog.records)
    assert "row 251" in logged and "TABLESTREAM_CSV_FIELD_LIMIT=4096" in logged


def test_invalid_utf8_in_a_csv_file_is_shown_with_replacement_characters(thread_server, tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"id,city\r\n1,Krak\xf3w\r\n2,Lima\r\n")
    app = create_app({"db": "", "synthetic_rows": "0", "csv": f"cities={path}"})
    server = thread_server(app)
    response = httpraw.get(f"{server.url}/tables/cities.csv")
    assert response.terminated
    assert response.text == "id,city\r\n1,Krak\ufffdw\r\n2,Lima\r\n"


def test_a_repeated_csv_header_name_is_made_unique_and_ndjson_keeps_both_columns(
    thread_server, tmp_path
):
    path = _write_csv(tmp_path / "dup.csv", ["id", "name", "name"], [["1", "first", "second"]])
    app = create_app({"db": "", "synthetic_rows": "0", "csv": f"dup={path}"})
    server = thread_server(app)
    ndjson = httpraw.get(f"{server.url}/tables/dup.ndjson").text
    assert json.loads(ndjson) == {"id": "1", "name": "first", "name_2": "second"}
    assert httpraw.get(f"{server.url}/tables/dup.csv").text.startswith("id,name,name_2\r\n")
    assert parse_table(httpraw.get(f"{server.url}/tables/dup").text).columns == [
        "id",
        "name",
        "name_2",
    ]


def test_unique_column_names_skip_names_the_table_already_has():
    assert unique_columns(["a", "b"]) == ["a", "b"]
    assert unique_columns(["a", "a", "a"]) == ["a", "a_2", "a_3"]
    assert unique_columns(["a", "a", "a_2"]) == ["a", "a_3", "a_2"]
    assert unique_columns(["a_2", "a", "a", "a_2"]) == ["a_2", "a", "a_3", "a_2_2"]


@pytest.fixture
def broken_view_db(tmp_path: Path) -> Path:
    path = tmp_path / "views.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE kept (id INTEGER)")
        conn.execute("INSERT INTO kept VALUES (1)")
        conn.execute("CREATE TABLE gone (id INTEGER)")
        conn.execute("CREATE VIEW orphan AS SELECT * FROM gone")
        conn.execute("DROP TABLE gone")
    conn.close()
    return path


def test_a_broken_view_is_listed_on_the_index_and_fails_readiness_by_name(
    thread_server, broken_view_db
):
    app = create_app({"db": str(broken_view_db), "synthetic_rows": "0"})  # start-up goes on
    server = thread_server(app)
    index = httpraw.get(f"{server.url}/")
    assert index.status == 200
    assert 'data-table-broken="true">broken: cannot read table &#39;orphan&#39;: no such table' in (
        index.text
    )
    assert ">kept</a>" in index.text and "ts-broken" not in index.text.split(">kept</a>")[1][:80]
    ready = httpraw.get(f"{server.url}/readyz")
    assert ready.status == 503
    assert ready.text.splitlines()[1:] == [
        "orphan: cannot read table 'orphan': no such table: main.gone"
    ]
    assert httpraw.get(f"{server.url}/tables/kept.csv").text == "id\r\n1\r\n"
    assert httpraw.get(f"{server.url}/tables/orphan").status == 503


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "is an empty file (0 bytes); expected a SQLite database file"),
        (b"id,name\n1,a\n", "is not a SQLite database (it starts with b'id,name\\n1,a\\n'"),
    ],
    ids=["empty", "not-sqlite"],
)
def test_serve_refuses_a_database_file_that_is_not_a_sqlite_database(tmp_path, content, expected):
    path = tmp_path / "data.sqlite3"
    path.write_bytes(content)
    env = {**os.environ, "TABLESTREAM_DB": str(path), "TABLESTREAM_PORT": "0"}
    done = subprocess.run(
        [sys.executable, "-m", "tablestream", "serve"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], done.stderr
    assert lines[0].startswith(f"tablestream: configuration error: TABLESTREAM_DB='{path}'")


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
def test_readyz_names_a_view_that_breaks_while_the_service_runs(thread_server, tmp_path):
    path = tmp_path / "live.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE base (id INTEGER)")
        conn.execute("CREATE VIEW over_base AS SELECT * FROM base")
    conn.close()
    server = thread_server(create_app({"db": str(path), "synthetic_rows": "0"}))
    assert httpraw.get(f"{server.url}/readyz").status == 200
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE base")
    conn.close()
    deadline = time.monotonic() + 10  # the verdict is reused for READINESS_CACHE_SECONDS
    while (ready := httpraw.get(f"{server.url}/readyz")).status == 200:
        assert time.monotonic() < deadline, "/readyz never noticed the broken view"
        time.sleep(0.1)
    assert ready.status == 503 and "over_base: cannot read table 'over_base'" in ready.text


def test_readiness_checks_every_table_once_for_probes_close_together(app):
    runtime = app.extensions["tablestream"]
    checked: list[str] = []
    for table in runtime.catalog.values():
        table.check = lambda name=table.name: checked.append(name)  # type: ignore[method-assign]
    assert runtime.problems() == [] and runtime.problems() == []
    assert sorted(checked) == sorted(runtime.catalog)
