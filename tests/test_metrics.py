"""Metrics on the streaming path equal what the client received, through a real waitress."""

from __future__ import annotations

import random
import string
import time
import urllib.request

import pytest

from tablestream import create_app
from tablestream.testing import httpraw
from tablestream.testing.metricsread import samples, value


@pytest.fixture
def server(thread_server, settings_for):
    return thread_server(create_app(settings_for(chunk_bytes=8192)))


def _wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)


def test_stream_counters_equal_the_bytes_chunks_and_rows_the_client_received(server):
    metrics = f"{server.url}/metrics"
    response = httpraw.get(f"{server.url}/tables/synthetic?limit=20000")
    assert response.terminated
    _wait_for(lambda: value(metrics, "tablestream_streams_total", outcome="completed") == 1)
    assert value(metrics, "tablestream_stream_bytes_total", table="synthetic") == len(response.body)
    assert value(metrics, "tablestream_stream_chunks_total", table="synthetic") == len(
        response.chunks
    )
    assert value(metrics, "tablestream_stream_rows_total", table="synthetic") == 20000
    assert value(metrics, "tablestream_stream_chunk_size_bytes_count") == len(response.chunks)
    assert value(metrics, "tablestream_stream_first_byte_seconds_count") == 1
    assert value(metrics, "tablestream_stream_duration_seconds_count") == 1
    assert value(metrics, "tablestream_streams_in_progress", table="synthetic") == 0
    assert (
        value(metrics, "tablestream_http_requests_total", method="GET", route="/tables/<name>") == 1
    )


def test_a_client_that_hangs_up_is_counted_client_aborted_and_leaves_no_stream_in_flight(server):
    metrics = f"{server.url}/metrics"
    response = httpraw.get(f"{server.url}/tables/synthetic?limit=2000000", max_bytes=300_000)
    assert not response.terminated
    _wait_for(lambda: value(metrics, "tablestream_streams_total", outcome="client_aborted") == 1)
    assert value(metrics, "tablestream_streams_total", outcome="client_aborted") == 1
    assert value(metrics, "tablestream_streams_total", outcome="completed") is None
    assert value(metrics, "tablestream_streams_in_progress", table="synthetic") == 0


def test_a_head_request_opens_no_stream_and_counts_no_abort(server):
    metrics = f"{server.url}/metrics"
    request = urllib.request.Request(f"{server.url}/tables/synthetic", method="HEAD")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/html; charset=utf-8"
        assert response.headers["Content-Length"] is None  # a GET streams: no length either
        assert response.read() == b""
    assert value(metrics, "tablestream_streams_total", outcome="client_aborted") is None
    assert value(metrics, "tablestream_streams_in_progress", table="synthetic") in (None, 0)
    assert (
        value(metrics, "tablestream_http_requests_total", method="HEAD", route="/tables/<name>")
        == 1
    )


def test_garbage_paths_do_not_create_a_label_value_each(server):
    rng = random.Random(7)
    for _ in range(100):
        path = "/" + "".join(rng.choices(string.ascii_letters + string.digits + "-_/", k=20))
        try:
            urllib.request.urlopen(server.url + path, timeout=5)
        except urllib.error.HTTPError as error:
            assert error.code in (404, 405)
    routes = {
        labels["route"]
        for name, labels, _ in samples(f"{server.url}/metrics")
        if name == "tablestream_http_requests_total"
    }
    known = {rule.rule for rule in server.app.url_map.iter_rules()} | {"<unmatched>"}
    assert "<unmatched>" in routes
    assert routes <= known, routes - known


def test_process_memory_is_exported_per_pid(server):
    rss = [
        (labels, v)
        for name, labels, v in samples(f"{server.url}/metrics")
        if name == "tablestream_process_resident_memory_bytes"
    ]
    assert len(rss) == 1 and rss[0][0]["pid"].isdigit() and rss[0][1] > 10 * 1024 * 1024
    assert value(f"{server.url}/metrics", "process_resident_memory_bytes") > 10 * 1024 * 1024


def test_many_apps_in_one_process_do_not_clash(settings_for):
    for _ in range(3):
        app = create_app(settings_for())
        assert app.test_client().get("/metrics").status_code == 200
