"""Issue 31, item 5: ``tablestream download`` ends byte-identical across a drain, or says why not.

The drain is real: the client (``python -m tablestream download``, a process of its own) reads
from a server started with a 1 s grace, which is sent SIGTERM mid-download. The marker's resume
point is a path on the same origin, as it is behind a balancer, so the new instance takes over
the same port (as a rolling deploy's replacement does on one host): the client's first attempts
to resume find the port closed and back off until the new server is ready. The file must then
be byte-identical (SHA-256) to an uninterrupted download of the same query, the CSV header once.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import os
import pty
import re
import select
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tablestream import create_app
from tablestream.access.tokens import add_token
from tablestream.config.secretfile import write_secret
from tablestream.downloadtally import csv_records
from tablestream.server.cli import main
from tablestream.testing import ServerProcess, free_port
from tablestream.testing.metricsread import value

from .faulty import FailingTable

ROWS = 1_500_000  # ~1.6 s to download here, longer than the 1 s grace after the signal


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, path: Path, *flags: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tablestream", "download", url, str(path), *flags],
        env={**os.environ, **env},
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".csv", ".ndjson"])
def test_a_download_across_a_drain_ends_byte_identical_to_an_uninterrupted_one(
    tmp_path: Path, demo_db: Path, suffix: str
):
    secret = tmp_path / "secret"
    write_secret(str(secret))
    env = {
        "TABLESTREAM_DB": str(demo_db),
        "TABLESTREAM_SECRET_FILE": str(secret),
        "TABLESTREAM_SYNTHETIC_ROWS": str(ROWS),
        "TABLESTREAM_SHUTDOWN_GRACE": "1",
    }
    first = ServerProcess(env, tmp_path / "first.log")
    second = None
    path = f"/tables/synthetic{suffix}?limit={ROWS}"
    cut, whole = tmp_path / f"cut{suffix}", tmp_path / f"whole{suffix}"
    try:
        client = download(first.url + path, cut, "--attempts", "8")
        deadline = time.monotonic() + 10
        while value(f"{first.url}/metrics", "tablestream_streams_in_progress") != 1:
            assert time.monotonic() < deadline and client.poll() is None, "no stream to cut"
            time.sleep(0.01)
        first.proc.send_signal(signal.SIGTERM)
        assert first.proc.wait(timeout=30) == 0
        second = ServerProcess(env, tmp_path / "second.log", port=first.port)
        _, summary = client.communicate(timeout=120)
        assert client.returncode == 0, summary
        resumed = re.search(r"(\d[\d,]*) rows, ([\d,]+) bytes, resumed (\d+) times", summary)
        assert resumed is not None, summary
        assert int(resumed.group(3)) >= 1, f"the download was not cut: {summary}"
        assert resumed.group(1) == f"{ROWS:,}"
        reference = download(second.url + path, whole)
        _, plain = reference.communicate(timeout=120)
        assert reference.returncode == 0 and "resumed 0 times" in plain, plain
        assert cut.stat().st_size == whole.stat().st_size
        assert sha256(cut) == sha256(whole)
    finally:
        first.stop()
        if second is not None:
            second.stop()


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
def test_a_download_exits_with_the_reason_when_it_cannot_complete(
    thread_server, settings_for, tmp_path: Path, capsys, monkeypatch
):
    app = create_app(settings_for())
    app.extensions["tablestream"].catalog["failing"] = FailingTable(fail_after=20_000)
    server = thread_server(app)
    out = tmp_path / "out.csv"

    def run(url: str, *flags: str) -> tuple[int, str]:
        code = main(["download", url, str(out), *flags])
        return code, capsys.readouterr().err

    code, err = run(f"{server.url}/tables/failing.csv")
    assert code == 4 and "no resume point" in err
    assert out.read_bytes().endswith(b"the table is incomplete; no resume point\r\n")
    code, err = run(f"{server.url}/tables/nowhere.csv")
    assert code == 3 and "404" in err and "There is no table 'nowhere.csv'" in err
    code, err = run(f"{server.url}/tables/orders?format=html")
    assert code == 2 and "text/html" in err
    assert run("ftp://127.0.0.1/tables/orders.csv")[0] == 2
    closed = f"http://127.0.0.1:{free_port()}/tables/orders.csv"
    started = time.monotonic()
    code, err = run(closed, "--attempts", "3")
    assert code == 5 and "gave up after 3 attempts" in err and "could not be reached" in err
    assert time.monotonic() - started >= 0.5 + 1.0  # backoff between the attempts
    code, err = run(f"{server.url}/tables/orders.ndjson?limit=10")
    assert code == 0 and "10 rows" in err and "resumed 0 times" in err
    assert len(out.read_bytes().splitlines()) == 10


def test_a_download_sends_the_token_from_the_environment_only(
    process_server, demo_db: Path, tmp_path: Path, capsys, monkeypatch
):
    tokens = tmp_path / "tokens.toml"
    token = add_token(str(tokens), "job", tables=["orders"])
    server = process_server(TABLESTREAM_DB=str(demo_db), TABLESTREAM_TOKENS_FILE=str(tokens))
    out = tmp_path / "orders.csv"
    url = f"{server.url}/tables/orders.csv?limit=100"
    assert main(["download", url, str(out)]) == 3
    assert "401" in capsys.readouterr().err
    monkeypatch.setenv("TABLESTREAM_TOKEN", token)
    assert main(["download", url, str(out)]) == 0
    assert "100 rows" in capsys.readouterr().err
    assert len(out.read_bytes().splitlines()) == 101  # the header and 100 rows


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
def test_a_download_on_a_terminal_shows_progress_then_one_summary_line(
    process_server, demo_db: Path, tmp_path: Path
):
    server = process_server(TABLESTREAM_DB=str(demo_db))
    out = tmp_path / "orders.ndjson"
    main_end, terminal = pty.openpty()
    client = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tablestream",
            "download",
            f"{server.url}/tables/orders.ndjson",
            out,
        ],
        stderr=terminal,
    )
    os.close(terminal)
    assert client.wait(timeout=60) == 0
    shown = b""
    while select.select([main_end], [], [], 0.5)[0]:
        try:
            block = os.read(main_end, 65536)
        except OSError:  # the terminal's other end is closed: all was read
            break
        if not block:
            break
        shown += block
    os.close(main_end)
    text = shown.decode()
    assert re.search(r"\r[\d,]+ rows  [\d.]+ MB/s  0 resumes", text), text
    lines = [line for line in text.replace("\r", "\n").splitlines() if line.strip()]
    assert (
        lines[-1].startswith("tablestream download: 20,000 rows, ")
        and "resumed 0 times" in lines[-1]
    )
    assert len(out.read_bytes().splitlines()) == 20_000


def _summary(err: str) -> re.Match:
    """The one summary line of stderr, parsed: rows, bytes, resumes, and the reason if any."""
    lines = err.splitlines()
    assert len(lines) == 1, err
    found = re.fullmatch(
        r"tablestream download: ([\d,]+) rows, ([\d,]+) bytes, resumed (\d+) times, "
        r"[\d.]+ s -> (.+?)(?:; incomplete: (.+))?",
        lines[0],
    )
    assert found is not None, err
    return found


def test_a_failed_download_still_ends_with_the_summary_line_and_the_reason(
    thread_server, settings_for, tmp_path: Path, capsys
):
    """Rows, bytes and resumes on failure too: how much of the table the file holds."""
    app = create_app(settings_for())
    app.extensions["tablestream"].catalog["failing"] = FailingTable(fail_after=20_000)
    server = thread_server(app)
    out = tmp_path / "out.csv"
    assert main(["download", f"{server.url}/tables/failing.csv", str(out)]) == 4
    summary = _summary(capsys.readouterr().err)
    written = out.read_bytes()
    after = int(re.search(rb"# tablestream:error after (\d+) rows", written).group(1))
    assert int(summary[1].replace(",", "")) == after > 0
    assert int(summary[2].replace(",", "")) == len(written)
    assert summary[3] == "0" and summary[4] == str(out)
    assert summary[5].endswith("its marker says there is no resume point")

    closed = f"http://127.0.0.1:{free_port()}/tables/orders.csv"
    assert main(["download", closed, str(out), "--attempts", "1"]) == 5
    summary = _summary(capsys.readouterr().err)
    assert summary.groups()[:3] == ("0", "0", "0")
    assert "gave up after 1 attempts" in summary[5] and "could not be reached" in summary[5]


def test_a_gzipped_download_is_byte_identical_to_the_plain_body(
    process_server, demo_db: Path, tmp_path: Path, capsys
):
    """The client asks for gzip and the server sends it (the bytes it counts as sent are fewer
    than before compression); the file is the uncompressed body byte for byte, as a request
    without Accept-Encoding gets it, and as a server that never compresses sends it."""
    gzipping = process_server(TABLESTREAM_DB=str(demo_db))
    plain = process_server(TABLESTREAM_DB=str(demo_db), TABLESTREAM_GZIP="false")
    for suffix in (".csv", ".ndjson"):
        path = f"/tables/orders{suffix}?limit=5000"
        with urllib.request.urlopen(gzipping.url + path) as response:
            assert "Content-Encoding" not in response.headers
            body = response.read()
        for server, compressed in ((gzipping, True), (plain, False)):
            metrics = f"{server.url}/metrics"
            before = [value(metrics, name, table="orders") or 0 for name in _SENT]
            out = tmp_path / f"{compressed}{suffix}"
            assert main(["download", server.url + path, str(out)]) == 0
            summary = _summary(capsys.readouterr().err)
            sent, uncompressed = (
                (value(metrics, name, table="orders") or 0) - start
                for name, start in zip(_SENT, before, strict=True)
            )
            assert uncompressed == len(body) == int(summary[2].replace(",", ""))
            assert (sent < uncompressed / 2) if compressed else (sent == uncompressed)
            assert out.read_bytes() == body
            assert summary[1] == "5,000"


_SENT = ("tablestream_stream_bytes_total", "tablestream_stream_uncompressed_bytes_total")


def test_csv_rows_are_counted_as_records_when_a_cell_holds_line_breaks(
    thread_server, settings_for, tmp_path: Path, capsys
):
    """RFC 4180 keeps a cell's line breaks inside its quotes: 4 rows, not the file's lines."""
    db = tmp_path / "notes.sqlite3"
    cells = ["one line", "two\nlines", 'a "quoted"\r\nword, and\n\nmore', ""]
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        conn.executemany("INSERT INTO notes (body) VALUES (?)", [(c,) for c in cells])
    conn.close()
    server = thread_server(create_app(settings_for(db=str(db))))
    for suffix in (".csv", ".ndjson"):
        out = tmp_path / f"notes{suffix}"
        assert main(["download", f"{server.url}/tables/notes{suffix}", str(out)]) == 0
        assert _summary(capsys.readouterr().err)[1] == "4"
        if suffix == ".csv":
            with out.open(newline="", encoding="utf-8") as f:
                assert [row[1] for row in list(csv.reader(f))[1:]] == cells
        else:
            assert [json.loads(line)["body"] for line in out.read_text().splitlines()] == cells


@given(
    rows=st.lists(st.lists(st.text(alphabet='ab,"\r\n ', max_size=8), min_size=1, max_size=3)),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=6),
)
def test_csv_records_are_counted_whatever_the_reads_cut_them_into(rows, cuts):
    """However the body arrives (a read may end inside a quoted cell, between a doubled quote's
    halves or between \\r and \\n), the count is the csv module's number of records."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    data = buffer.getvalue().encode()
    edges = sorted({0, len(data), *(c for c in cuts if c < len(data))})
    records, quoted = 0, False
    for start, end in itertools.pairwise(edges):
        counted, quoted = csv_records(data[start:end], quoted)
        records += counted
    assert (records, quoted) == (len(list(csv.reader(io.StringIO(buffer.getvalue())))), False)
