"""A plain (non-editable) install carries its templates and static files and serves a page."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tablestream.testing import ServerProcess, httpraw

from .servers import ROOT
from .tablehtml import parse_table


@pytest.mark.slow
def test_a_non_editable_install_serves_a_table_page(tmp_path):
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", site, ROOT],
        check=True,
        timeout=300,
    )
    assert (site / "service" / "templates" / "table.html").is_file()
    assert (site / "service" / "templates" / "static" / "tablestream.css").is_file()
    assert (site / "service" / "templates" / "tables" / "demo" / "orders.html").is_file()
    elsewhere = tmp_path / "elsewhere"  # no templates/ beside it: only the installed copy works
    elsewhere.mkdir()
    env = {"PYTHONPATH": str(site), "TABLESTREAM_DB": "", "TABLESTREAM_SYNTHETIC_ROWS": "100"}
    where = subprocess.run(
        [sys.executable, "-c", "import tablestream; print(service.__file__)"],
        env={**env, "PATH": "/usr/bin:/bin"},
        cwd=elsewhere,
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.strip().startswith(str(site))
    server = ServerProcess(env, tmp_path / "server.log", cwd=elsewhere)
    try:
        page = httpraw.get(f"{server.url}/tables/synthetic")
        css = httpraw.get(f"{server.url}/static/tablestream.css")
    finally:
        server.stop()
    assert page.status == 200 and parse_table(page.text).rows_sent == 100
    assert css.status == 200 and b"position: sticky" in css.body
