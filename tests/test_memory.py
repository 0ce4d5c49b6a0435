"""Streaming does not hold the table: a 50x longer stream costs the server no more memory.

Generous margins on purpose — these guard the design (nothing joins the page), not figures;
the benchmark (make bench) measures and judges the numbers.
"""

from __future__ import annotations

import pytest

from tablestream.config import Settings
from tablestream.sources import build_catalog
from tablestream.sources.demo import create_demo_db
from tablestream.testing import httpraw

MIB = 1024 * 1024


def _stream(url: str, rows: int) -> None:
    response = httpraw.get(f"{url}/tables/synthetic?limit={rows}", keep=False, timeout=120)
    assert response.terminated
    assert f'data-rows-sent="{rows}"'.encode() in response.tail


@pytest.mark.slow
def test_server_rss_after_500k_rows_is_within_a_few_mib_of_after_10k(process_server, settings_for):
    env = {f"TABLESTREAM_{k.upper()}": v for k, v in settings_for().items()}
    server = process_server(**env)
    for _ in range(3):  # let waitress allocate its buffers and the allocator settle
        _stream(server.url, 10_000)
    after_small = server.rss()
    _stream(server.url, 500_000)
    after_large = server.rss()
    page_size = 500_000 * 130
    assert after_large - after_small < 6 * MIB, (after_small, after_large)
    assert after_large - after_small < page_size / 10


@pytest.mark.parametrize(("setting", "expected"), [("64", -64), ("0", -2000)])
def test_a_sqlite_stream_reads_through_a_page_cache_of_the_configured_size(
    tmp_path, setting, expected
):
    """Each stream's connection has TABLESTREAM_SQLITE_CACHE_KIB of page cache (0: SQLite's)."""
    db = tmp_path / "demo.sqlite3"
    create_demo_db(db, rows=300)
    settings = Settings.from_env(
        {"TABLESTREAM_DB": str(db), "TABLESTREAM_SQLITE_CACHE_KIB": setting}
    )
    stream = build_catalog(settings)["orders"].open()
    try:
        assert stream._conn.execute("PRAGMA cache_size").fetchone()[0] == expected
        assert sum(len(batch) for batch in stream.batches()) == 300
    finally:
        stream.close()
