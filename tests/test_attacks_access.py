"""The attacker's suite for the access gate (issue 28, holes 3-6), against `tablestream serve`.

Each test replays one of the issue's reproductions; each failed against the behaviour before
the fix (the answer it got then is said in the test) and proves the fixed one:

- hole 3, lock-out by a stranger: a valid credential is checked first and always let in, a
  missing credential spends nothing, /readyz and /healthz are never throttled;
- hole 4, hides that hide nothing: ``token add`` keeps every --hide/--tables, and a hide entry
  naming no served column stops start-up or, on reload, keeps that entry out;
- hole 5, revocation fails open: a broken or deleted file fails closed for what changed, with
  ``tablestream_access_file_broken`` raised;
- hole 6, a budget per process: one budget for all the children of ``--processes``.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tablestream.access.tokens import TokenFile, add_token
from tablestream.server.cli import main as cli_main
from tablestream.testing import free_port, httpraw, metricsread

from .servers import wait_for
from .signin import ProxySecret

ORDERS = "/tables/orders.csv?limit=1"


def _get(url: str, token: str | None = None, **headers: str) -> httpraw.RawResponse:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpraw.get(url, headers=headers, timeout=30)  # a new connection every time


@pytest.fixture
def tokens(tmp_path: Path) -> dict[str, str]:
    path = tmp_path / "tokens.toml"
    return {
        "reader": add_token(str(path), "reader", tables=["orders"]),
        "analyst": add_token(str(path), "analyst", tables=["*"], hide=["customers.email"]),
        "file": str(path),
    }


@pytest.fixture
def serve(process_server, demo_db, tokens):
    """`tablestream serve` with the demo tables and the tokens file; metrics on their own port."""

    def start(*args: str, **env: str):
        port = free_port()
        server = process_server(
            args,
            TABLESTREAM_DB=str(demo_db),
            TABLESTREAM_SYNTHETIC_ROWS="1000",
            TABLESTREAM_TOKENS_FILE=tokens["file"],
            TABLESTREAM_METRICS_PORT=str(port),
            **env,
        )
        server.metrics_url = f"http://127.0.0.1:{port}/metrics"
        return server

    return start


def _spend(url: str, times: int) -> list[int]:
    return [_get(url + ORDERS, "tst_wrong").status for _ in range(times)]


# -- hole 3: lock-out by a stranger


def test_a_valid_token_is_let_in_from_an_address_over_its_failure_budget(serve, tokens):
    server = serve(TABLESTREAM_AUTH_FAILURES_PER_MINUTE="5")
    assert _spend(server.url, 6) == [401] * 5 + [429]
    assert _get(server.url + ORDERS, tokens["reader"]).status == 200  # before: 429


def test_requests_without_credentials_never_spend_the_failure_budget(serve):
    server = serve(TABLESTREAM_AUTH_FAILURES_PER_MINUTE="5")
    answers = {_get(server.url + ORDERS).status for _ in range(50)}
    assert answers == {401}  # before: 429 from the 6th on
    assert _get(server.url + ORDERS, "tst_wrong").status == 401  # the budget is still whole


def test_readyz_and_healthz_answer_an_address_over_its_failure_budget(serve, tokens):
    server = serve(TABLESTREAM_AUTH_FAILURES_PER_MINUTE="5")
    assert _spend(server.url, 6)[-1] == 429
    for token in (None, "tst_wrong", tokens["reader"]):
        ready = _get(server.url + "/readyz", token)
        assert (ready.status, ready.body) == (200, b"ready\n"), token  # before: 429
        assert _get(server.url + "/healthz", token).body == b"ok\n"
    assert _spend(server.url, 1) == [429]  # /readyz with a bad token spent nothing, no 401


# -- hole 6: the budget per process


def _child_serving(connection: http.client.HTTPConnection, children: list[int]) -> int:
    """The child of ``--processes`` that accepted ``connection``: the one holding its socket."""
    client_port = connection.sock.getsockname()[1]
    server_port = connection.sock.getpeername()[1]
    rows = [line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:]]
    # The server's end: from the server's port to ours, and open (a TIME_WAIT row of an earlier
    # connection that used the same port has inode 0).
    inode = next(
        r[9]
        for r in rows
        if int(r[2].split(":")[1], 16) == client_port
        and int(r[1].split(":")[1], 16) == server_port
        and r[9] != "0"
    )
    for pid in children:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(fd) == f"socket:[{inode}]":
                    return pid
    raise AssertionError(f"no child holds the connection from port {client_port}")


def _one_connection_per_child(server) -> list[http.client.HTTPConnection]:
    """A kept-alive connection to each child, whichever the kernel would let accept: the
    others are paused (SIGSTOP) while one child's connection is made, so only it can accept
    (left alone, one busy machine gave all of 40 connections to the same child)."""
    # Both children must be accepting: the server is ready when the first one is.
    wait_for(
        lambda: server.log_path.read_text().count("tablestream serving ") >= 2, 60, "both children"
    )
    children = server.pids()[1:]
    connections = []
    try:
        for child in children:
            others = [pid for pid in children if pid != child]
            for pid in others:
                os.kill(pid, signal.SIGSTOP)
            try:
                connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
                connections.append(connection)
                connection.request("GET", "/healthz")
                connection.getresponse().read()
            finally:
                for pid in others:
                    os.kill(pid, signal.SIGCONT)
            assert _child_serving(connection, children) == child
    except BaseException:
        for connection in connections:
            connection.close()
        raise
    return connections


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
def test_the_failure_budget_is_shared_by_the_processes_of_one_server(serve):
    server = serve("--processes", "2")  # the documented 30 failures a minute
    connections = _one_connection_per_child(server)
    answers = []
    try:
        for i in range(50):  # bounded; alternately to each child
            connection = connections[i % 2]
            connection.request("GET", ORDERS, headers={"Authorization": "Bearer tst_wrong"})
            response = connection.getresponse()
            response.read()
            answers.append(response.status)
    finally:
        for connection in connections:
            connection.close()
    assert 30 <= answers.count(401) <= 31, answers  # before: 50 (each child had its 30)
    assert set(answers[32:]) == {429}, answers


# -- hole 4: hides that hide nothing


def test_token_add_keeps_every_hide_and_tables_option(serve, tokens, demo_db, monkeypatch, capsys):
    monkeypatch.setenv("TABLESTREAM_DB", str(demo_db))
    argv = ["token", "add", "rep", "--file", tokens["file"], "--tables", "customers"]
    argv += ["--tables", "orders,synthetic", "--hide", "customers.email"]
    argv += ["--hide", "customers.city,orders.note"]
    assert cli_main(argv) == 0
    token = capsys.readouterr().out.strip()
    (entry,) = [e for e in TokenFile(tokens["file"]).entries if e.name == "rep"]
    assert entry.grant.tables == ("customers", "orders", "synthetic")
    assert entry.grant.hide == {"customers.email", "customers.city", "orders.note"}
    server = serve()
    header = _get(server.url + "/tables/customers.csv?limit=1", token).text.splitlines()[0]
    assert header == "id,name,signed_up"  # before: email was served (only the last --hide kept)
    assert "note" not in _get(server.url + ORDERS, token).text.splitlines()[0]


def test_token_add_refuses_a_hide_naming_no_served_column(tokens, demo_db, monkeypatch, capsys):
    monkeypatch.setenv("TABLESTREAM_DB", str(demo_db))
    argv = ["token", "add", "rep", "--file", tokens["file"], "--tables", "customers"]
    assert cli_main([*argv, "--hide", "customers.Email"]) == 2
    assert "its columns: id, name, email, city, signed_up" in capsys.readouterr().err
    assert "rep" not in Path(tokens["file"]).read_text()
    assert cli_main([*argv, "--hide", "customers.Email", "--unchecked"]) == 0


@pytest.mark.parametrize("kind", ["tokens", "policy"])
def test_a_hide_entry_naming_no_served_column_stops_start_up(kind, tmp_path, demo_db):
    path = tmp_path / f"{kind}.toml"
    if kind == "tokens":
        add_token(str(path), "rep", tables=["customers"], hide=["customers.Email"])
        entry = f"{path}: token 1 (rep)"
    else:
        path.write_text('[groups.sales]\ntables = ["customers"]\nhide = ["customers.Email"]\n')
        entry = f"{path}: groups.sales"
    env = {
        **os.environ,
        "TABLESTREAM_DB": str(demo_db),
        "TABLESTREAM_TRUSTED_PROXY": "127.0.0.1",
        f"TABLESTREAM_{'TOKENS' if kind == 'tokens' else 'AUTH_POLICY'}_FILE": str(path),
        "TABLESTREAM_PORT": str(free_port()),
    }
    if kind == "policy":  # a policy needs the sign-in proxy's secret (docs/production.md)
        env["TABLESTREAM_AUTH_PROXY_SECRET_FILE"] = str(ProxySecret(tmp_path).service_file)
    done = subprocess.run(
        [sys.executable, "-m", "tablestream", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr  # before: it served, with email shown
    assert (
        f"{entry}: hide entry 'customers.Email' names no column of customers; its columns: "
        "id, name, email, city, signed_up"
    ) in done.stderr


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
def test_a_hide_entry_naming_no_served_column_added_while_serving_is_not_taken(serve, tokens):
    server = serve()
    wrong = add_token(tokens["file"], "rep", tables=["customers"], hide=["customers.Email"])
    time.sleep(1.5)  # past the file check; the old behaviour served this token, email and all
    assert _get(server.url + "/tables/customers.csv?limit=1", wrong).status == 401
    assert _get(server.url + ORDERS, tokens["reader"]).status == 200
    assert metricsread.value(server.metrics_url, "tablestream_access_file_broken") == 1


# -- hole 5: revocation fails open


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
def test_a_token_removed_in_a_broken_edit_is_refused_at_once(serve, tokens):
    server = serve()
    path = Path(tokens["file"])
    assert _get(server.url + ORDERS, tokens["analyst"]).status == 200
    text = path.read_text()
    analyst = text.index('[[token]]\nname = "analyst"')
    path.write_text(text[:analyst] + "[[token\n")  # analyst removed, and a typo left behind
    wait_for(
        lambda: _get(server.url + ORDERS, tokens["analyst"]).status == 401,  # before: 200
        5,
        "the removed token refused",
    )
    assert _get(server.url + ORDERS, tokens["reader"]).status == 200  # unchanged: still in
    assert metricsread.value(server.metrics_url, "tablestream_access_file_broken") == 1
    path.write_text(text)  # mended: everything back, the gauge down
    wait_for(lambda: _get(server.url + ORDERS, tokens["analyst"]).status == 200, 5, "mended")
    assert metricsread.value(server.metrics_url, "tablestream_access_file_broken") == 0


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
def test_a_deleted_tokens_file_refuses_every_token_and_raises_the_broken_file_metric(serve, tokens):
    server = serve()
    assert metricsread.value(server.metrics_url, "tablestream_access_file_broken") == 0
    Path(tokens["file"]).unlink()
    wait_for(
        lambda: _get(server.url + ORDERS, tokens["reader"]).status == 401,  # before: 200
        5,
        "every token refused",
    )
    assert _get(server.url + ORDERS, tokens["analyst"]).status == 401
    assert (
        metricsread.value(server.metrics_url, "tablestream_access_file_broken", file="tokens") == 1
    )
    assert _get(server.url + "/readyz").body == b"ready\n"  # the rest of the service serves
    assert "tokens file not fully reloaded: kept 0 unchanged entries" in server.log_path.read_text()


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
def test_a_group_removed_in_a_broken_policy_edit_reads_nothing(process_server, demo_db, tmp_path):
    policy = tmp_path / "policy.toml"
    kept = '[groups.sre]\ntables = ["synthetic"]\n'
    policy.write_text('[groups.analysts]\ntables = ["orders"]\n\n' + kept)
    secret = ProxySecret(tmp_path / "secret")
    server = process_server(
        TABLESTREAM_DB=str(demo_db),
        TABLESTREAM_AUTH_POLICY_FILE=str(policy),
        TABLESTREAM_TRUSTED_PROXY="127.0.0.1",
        TABLESTREAM_AUTH_PROXY_SECRET_FILE=str(secret.service_file),
    )

    def _signed_in(groups: str) -> dict[str, str]:
        """What the sign-in site sends: the person, the groups and the proxy's secret."""
        return {
            "X-Forwarded-User": "alice@example.com",
            "X-Forwarded-Groups": groups,
            "X-Tablestream-Proxy-Secret": secret.value,
        }

    assert _get(server.url + ORDERS, **_signed_in("analysts")).status == 200
    policy.write_text(kept + "\n[users.oops\n")  # analysts removed, a typo left behind
    wait_for(  # before: the policy was read once at start, so analysts read on (200)
        lambda: _get(server.url + ORDERS, **_signed_in("analysts")).status == 404,
        5,
        "the removed group reads nothing",
    )
    synthetic = "/tables/synthetic.csv?limit=1"
    assert _get(server.url + synthetic, **_signed_in("sre")).status == 200
    policy.write_text(kept.replace("synthetic", "orders"))  # a change that parses is taken
    wait_for(lambda: _get(server.url + ORDERS, **_signed_in("sre")).status == 200, 5, "the reload")


MAIL = re.compile(rb"\bmail\b")  # the renamed column's name, not "email"


def test_a_hidden_column_renamed_while_serving_is_still_not_shown(
    process_server, demo_db, tokens, tmp_path
):
    """Hide entries are checked against the columns at start and on reload. A table whose hidden
    column is renamed under the running service (the file replaced, as data-integrity.md says)
    must not show it under its new name: a process reads a table's columns once, so the rows
    still come as the columns it checked the grant against."""
    db = tmp_path / "demo.sqlite3"
    shutil.copyfile(demo_db, db)
    server = process_server(TABLESTREAM_DB=str(db), TABLESTREAM_TOKENS_FILE=tokens["file"])
    customers = "/tables/customers.csv?limit=3"
    before = _get(server.url + customers, tokens["analyst"])
    assert before.status == 200 and before.text.splitlines()[0] == "id,name,city,signed_up"
    new = tmp_path / "demo.sqlite3.new"
    shutil.copyfile(db, new)
    with sqlite3.connect(new) as conn:
        conn.execute("ALTER TABLE customers RENAME COLUMN email TO mail")
    conn.close()
    new.rename(db)
    for path in (customers, "/tables/customers.ndjson?limit=3", "/tables/customers?limit=3"):
        after = _get(server.url + path, tokens["analyst"])
        assert b"@example.com" not in after.body and not MAIL.search(after.body), path
    described = _get(server.url + "/tables/customers.json", tokens["analyst"])
    assert described.status == 200 and not MAIL.search(described.body), described.text
    index = _get(server.url + "/", tokens["analyst"])
    assert not MAIL.search(index.body), index.text  # (synthetic has an "email")
