"""Read a /metrics page the way Prometheus does: with prometheus_client's own parser."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["samples", "value"]


def samples(url: str) -> list[tuple[str, dict[str, str], float]]:
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return [
        (s.name, dict(s.labels), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def value(url: str, name: str, **labels: str) -> float | None:
    """The sum over all series of ``name`` whose labels include ``labels`` (None if none)."""
    found = [v for n, lab, v in samples(url) if n == name and labels.items() <= lab.items()]
    return sum(found) if found else None
