"""The row steps: a ``LoadTestShape`` that holds each rows-per-stream value for a while.

A shape only sets user counts (and locust ignores ``--users``/``--run-time`` once a shape is
present unless it sets ``use_common_options``), so the rows per stream travel on their own: on
every tick the shape sends the current value as a custom message. In a distributed run that
message reaches every worker (late joiners included, within a second); a local runner delivers
it to itself. Users read the last value received with ``current_rows``.
"""

from __future__ import annotations

from typing import Any

from locust import LoadTestShape

__all__ = ["ROWS_MESSAGE", "RowSteps", "current_rows", "parse_plan", "receive_rows"]

ROWS_MESSAGE = "tablestream_rows"
_received: dict[str, int] = {}


def parse_plan(rows_text: str, seconds_text: str) -> list[tuple[int, float]]:
    """``"1000,10000"`` and ``"30"`` (or one duration per step) → ``[(1000, 30.0), ...]``."""
    try:
        rows = [int(r) for r in rows_text.replace("_", "").split(",") if r.strip()]
        seconds = [float(s) for s in seconds_text.split(",") if s.strip()]
    except ValueError:
        raise ValueError(
            f"--row-steps {rows_text!r} / --step-seconds {seconds_text!r}: expected "
            "comma-separated whole numbers of rows and seconds"
        ) from None
    if len(seconds) == 1:
        seconds *= len(rows)
    if not rows or len(seconds) != len(rows) or min(rows) < 1 or min(seconds) <= 0:
        raise ValueError(
            f"--row-steps {rows_text!r} / --step-seconds {seconds_text!r}: expected at least one "
            "step of >= 1 row, and one duration > 0 for all steps or one per step"
        )
    return list(zip(rows, seconds, strict=True))


def receive_rows(environment: Any, msg: Any, **kwargs: Any) -> None:
    """Message handler (workers and local runner): remember the step the shape announced."""
    _received["rows"] = int(msg.data)


def current_rows() -> int:
    """Rows per stream users should ask for now (the first step until a message arrived)."""
    return _received.get("rows", 1)


class RowSteps(LoadTestShape):
    """Constant users; rows per stream stepped by ``--row-steps``, each held ``--step-seconds``."""

    rows: int | None = None  # the step running now; the memory watcher tags samples with it

    def tick(self) -> tuple[int, float] | None:
        options = self.runner.environment.parsed_options
        plan = parse_plan(options.row_steps, options.step_seconds)
        elapsed = self.get_run_time()
        for rows, seconds in plan:
            if elapsed < seconds:
                self.rows = rows
                self.runner.send_message(ROWS_MESSAGE, rows)
                return options.step_users, float(options.step_users)
            elapsed -= seconds
        return None
