"""The shipped dashboard and the sums Prometheus makes, checked against a live cluster.

A panel that sums over instances must count each instance once (no series twice, none lost),
and a per-instance panel must show one line per instance. Both are checked on the real
Prometheus scraping the cluster of loadtests/cluster.py, after the load has stopped and every
instance has been scraped since: the sum Prometheus makes over the instances equals the sum of
what each instance's own ``/metrics`` says, and every panel of ops/grafana-dashboard.json
answers with the series it should.
"""

from __future__ import annotations

import json

from tablestream.testing.metricsread import samples
from tests.prometheus import query
from tests.servers import ROOT

__all__ = ["DASHBOARD", "SUMMED", "dashboard_series", "sums"]

DASHBOARD = ROOT / "ops" / "grafana-dashboard.json"
SUMMED = ("tablestream_stream_rows_total", "tablestream_streams_total")


def sums(api: str, metrics_urls: list[str]) -> dict[str, tuple[float, float]]:
    """For each of SUMMED: (Prometheus' sum over the instances, the sum of their /metrics)."""
    direct = [samples(url) for url in metrics_urls]
    found = {}
    for name in SUMMED:
        result = query(api, f'sum({name}{{job="tablestream"}})')
        prometheus = float(result[0]["value"][1]) if result else 0.0
        found[name] = (prometheus, sum(v for page in direct for n, _, v in page if n == name))
    return found


def dashboard_series(api: str) -> dict[str, list[dict]]:
    """Each panel's title and the series its queries return now (over the last minute)."""
    dashboard = json.loads(DASHBOARD.read_text())
    answers = {}
    for panel in dashboard["panels"]:
        series = []
        for target in panel["targets"]:
            expr = target["expr"].replace("$__rate_interval", "1m").replace("$job", "tablestream")
            series += [s["metric"] for s in query(api, expr)]
        answers[panel["title"]] = series
    return answers
