"""Streaming does not hold the table: a 50x longer stream costs the server no more memory.

Generous margins on purpose — these guard the design (nothing joins the page), not figures;
the benchmark (make bench) measures and judges the numbers.
"""

from __future__ import annotations

import pytest

from service.testing import httpraw

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
