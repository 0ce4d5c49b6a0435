"""Several server processes on one port: one scrape shows the sum of all of them."""

from __future__ import annotations

import pytest

from tablestream.testing import free_port, httpraw
from tablestream.testing.metricsread import samples, value


@pytest.mark.slow
def test_processes_share_the_port_and_one_scrape_sums_them(process_server, tmp_path):
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"stale")  # the parent must clean this
    metrics_port = free_port()
    server = process_server(
        TABLESTREAM_DB="",
        TABLESTREAM_SYNTHETIC_ROWS="100000",
        TABLESTREAM_PROCESSES="2",
        TABLESTREAM_METRICS_PORT=str(metrics_port),
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
    )
    streams, total_bytes = 30, 0
    for _ in range(streams):
        response = httpraw.get(f"{server.url}/tables/synthetic?limit=500")
        assert response.terminated
        total_bytes += response.size
    metrics = f"http://127.0.0.1:{metrics_port}/metrics"
    pids = {
        labels["pid"]
        for name, labels, _ in samples(metrics)
        if name == "tablestream_process_resident_memory_bytes"
    }
    assert len(pids) == 2
    counter_files = sorted(p.name for p in metrics_dir.glob("counter_*.db"))
    assert len(counter_files) == 2 and "counter_999999.db" not in counter_files
    assert value(metrics, "tablestream_streams_total", outcome="completed") == streams
    assert value(metrics, "tablestream_stream_rows_total") == streams * 500
    assert value(metrics, "tablestream_stream_bytes_total") == total_bytes
    assert httpraw.get(f"{server.url}/metrics").status == 404  # only on the metrics port
