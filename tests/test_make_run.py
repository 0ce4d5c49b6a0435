"""The README's first command, `make run`, from a clean copy of the checkout, as a user runs it.

A copy holds what ``git clone`` would give plus what is not yet committed (tracked and new files,
nothing ignored: no venv, no demo database, no build folder). In it ``make run`` must create
``.venv``, install the project as a user would (built, not editable), make the demo database and
serve a page with its success footer within a bounded time, then stop cleanly on SIGTERM. And the
test venv ``make test`` builds must never stand in for that install.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tablestream.testing import free_port, httpraw

from .servers import clean_copy, wait_for
from .tablehtml import parse_table

pytestmark = pytest.mark.slow

FIRST_PAGE_WITHIN_S = 600  # a venv, a wheel build, the dependencies from pip's cache or index


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        here = todo.pop()
        children = Path(f"/proc/{here}/task/{here}/children")
        kids = [int(p) for p in children.read_text().split()] if children.exists() else []
        found += kids
        todo += kids
    return found


def serving_process(make_pid: int) -> int | None:
    for pid in descendants(make_pid):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except FileNotFoundError:
            continue
        if any(a.endswith(b"/tablestream") for a in argv) and b"serve" in argv:
            return pid
    return None


def test_make_run_does_not_reuse_the_test_install(tmp_path):
    copy = clean_copy(tmp_path / "checkout")
    # What `make test` leaves behind: its venv and stamp, newer than every source file.
    (copy / ".venv-dev" / "bin").mkdir(parents=True)
    (copy / ".venv-dev" / "bin" / "activate").touch()
    (copy / ".venv-dev" / ".installed-test").touch()
    planned = subprocess.run(
        ["make", "-n", "run"], cwd=copy, capture_output=True, text=True, timeout=60
    )
    assert planned.returncode == 0, planned.stderr
    assert "-m venv .venv\n" in planned.stdout
    assert ".venv/bin/python -m pip install --quiet .\n" in planned.stdout
    assert "-e " not in planned.stdout  # never editable


def test_make_run_from_a_clean_copy_serves_the_demo_and_stops_on_sigterm(tmp_path):
    copy = clean_copy(tmp_path / "checkout")
    port = free_port()
    env = {**os.environ, "TABLESTREAM_PORT": str(port), "DEMO_ROWS": "2000"}
    env.pop("VIRTUAL_ENV", None)
    log = open(tmp_path / "make-run.log", "wb")  # noqa: SIM115 - closed in the finally
    started = time.monotonic()
    make = subprocess.Popen(
        ["make", "run"],
        cwd=copy,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:

        def page():
            if make.poll() is not None:
                raise AssertionError(f"make run exited with {make.returncode}")
            try:
                return httpraw.get(f"http://127.0.0.1:{port}/tables/orders?limit=20", timeout=5)
            except OSError:
                time.sleep(0.5)
                return None

        first = wait_for(page, FIRST_PAGE_WITHIN_S, "make run's first page", step=0.5)
        took = time.monotonic() - started
        print(f"make run from a clean copy: first page after {took:.1f} s")
        assert first.status == 200 and parse_table(first.text).rows_sent == 20
        installed = subprocess.run(
            [
                copy / ".venv" / "bin" / "python",
                "-c",
                "import tablestream; print(tablestream.__file__)",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert "/site-packages/tablestream/" in installed.stdout, installed.stderr
        assert not list((copy / ".venv").rglob("__editable__*"))
        assert (copy / "data" / "demo.sqlite3").is_file()

        server = serving_process(make.pid)
        assert server is not None
        os.killpg(make.pid, signal.SIGTERM)
        wait_for(
            lambda: not Path(f"/proc/{server}").exists() or _zombie(server),
            30,
            "the server's exit after SIGTERM",
        )
        make.wait(timeout=30)
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGKILL)
            make.wait()
        log.close()
    text = (tmp_path / "make-run.log").read_text(errors="replace")
    assert "SIGTERM: listening socket closing" in text, text[-3000:]
    assert "Traceback" not in text, text[-3000:]


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True
