"""Each optimisation of the row path on its own, in process (template stream + chunker, no HTTP).

The end-to-end benchmark shows where the service stands; this shows what each step bought, on
the same rows: the per-cell Jinja loop with rows built from a datetime each (where the service
started), then the faster synthetic rows, then the batched ``rows_html`` filter.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Iterable, Iterator

from jinja2 import Environment

from tablestream.sources.base import BATCH_ROWS
from tablestream.sources.synthetic import synthetic_batch, synthetic_row
from tablestream.stream.chunker import Chunker
from tablestream.stream.markup import rows_html

__all__ = ["measure_steps"]

_ENV = Environment(autoescape=True)
_ENV.filters["rows_html"] = rows_html
_CELL_LOOP = _ENV.from_string(
    "{% for row in rows %}<tr>{% for cell in row %}<td>{{ cell }}</td>{% endfor %}</tr>\n"
    "{% endfor %}"
)
_FILTER = _ENV.from_string(
    '{% for batch in batches %}{{ batch|rows_html("<tr><td>", "</td><td>", "</td></tr>\\n") }}'
    "{% endfor %}"
)


def _starts(n: int) -> range:
    return range(0, n, BATCH_ROWS)


def _steps(n: int) -> list[tuple[str, Callable[[], Iterable[str]]]]:
    def datetime_rows() -> Iterator[tuple[str, ...]]:
        return (synthetic_row(i) for i in range(n))

    def fast_rows() -> Iterator[tuple[str, ...]]:
        return (r for s in _starts(n) for r in synthetic_batch(s, min(s + BATCH_ROWS, n)))

    def datetime_batches() -> Iterator[list[tuple[str, ...]]]:
        return ([synthetic_row(i) for i in range(s, min(s + BATCH_ROWS, n))] for s in _starts(n))

    def fast_batches() -> Iterator[list[tuple[str, ...]]]:
        return (synthetic_batch(s, min(s + BATCH_ROWS, n)) for s in _starts(n))

    return [
        (
            "per-cell Jinja loop, a datetime per row (the start)",
            lambda: _CELL_LOOP.generate(rows=datetime_rows()),
        ),
        (
            "per-cell Jinja loop, table-driven synthetic rows",
            lambda: _CELL_LOOP.generate(rows=fast_rows()),
        ),
        (
            "rows_html batch filter, a datetime per row",
            lambda: _FILTER.generate(batches=datetime_batches()),
        ),
        (
            "rows_html batch filter, table-driven rows (now)",
            lambda: _FILTER.generate(batches=fast_batches()),
        ),
    ]


def measure_steps(rows: int = 200_000, repeats: int = 3) -> list[tuple[str, float]]:
    """(step, median rows/s) for each step, interleaved so machine noise hits all alike."""
    steps = _steps(rows)
    results: dict[str, list[float]] = {name: [] for name, _ in steps}
    for _ in range(repeats):
        for name, make in steps:
            start = time.perf_counter()
            for _chunk in Chunker(32768).chunks(make()):
                pass
            results[name].append(rows / (time.perf_counter() - start))
    return [(name, statistics.median(values)) for name, values in results.items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.steps", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--rows", type=int, default=200_000, help="rows per step [200000]")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each step [3]")
    args = parser.parse_args(argv)
    for name, rate in measure_steps(args.rows, args.repeats):
        print(f"{name:55s} {rate / 1000:8.0f}k rows/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
