"""The text formats' verdicts compare like with like: the engine's export reads the rows the
service streams, and a verdict is the median of the pairs, failing when its engine is missing."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
from types import SimpleNamespace

import pytest

from bench.exports import Exports, engine_command, run_engine, verdicts
from tablestream import create_app


@pytest.mark.skipif(shutil.which("sqlite3") is None, reason="tests/system/install-deps.sh")
def test_sqlite3s_export_holds_the_rows_the_service_streams_as_csv(demo_db):
    command = engine_command("orders", 40, demo_db, "", "")
    assert command[:2] == ["sqlite3", "-csv"]
    proc = subprocess.run(command, capture_output=True, text=True, check=True)
    theirs = list(csv.reader(io.StringIO(proc.stdout)))
    app = create_app({"db": str(demo_db), "synthetic_rows": "0"})
    with app.test_client() as client:
        ours = list(csv.reader(io.StringIO(client.get("/tables/orders.csv?limit=40").text)))
    assert len(ours) == len(theirs) == 41 and ours[0] == theirs[0]
    assert [row[0] for row in ours] == [row[0] for row in theirs]  # the same ids, in order
    assert run_engine(command)[1] == len(proc.stdout.encode())


def _run(rows_per_s: float) -> SimpleNamespace:
    return SimpleNamespace(rows_per_s=rows_per_s)


def test_a_verdict_is_the_median_of_pairwise_ratios_and_a_missing_engine_fails():
    result = Exports(rows=1_000_000)
    # engine seconds per pair: 1.0, 2.0, 1.0 -> engine 1M, 0.5M, 1M rows/s
    result.pairs["pg_orders"] = [
        (1.0, _run(900_000), _run(1)),
        (2.0, _run(300_000), _run(1)),  # a slow pair: both sides slowed
        (1.0, _run(700_000), _run(1)),
    ]
    result.missing["orders"] = "sqlite3 is not installed"
    lines = verdicts(result, ["synthetic", "orders", "pg_orders"])
    assert [ok for ok, _ in lines] == [False, False]
    assert "not measured, sqlite3 is not installed" in lines[0][1]
    assert "0.70x" in lines[1][1] and "psql" in lines[1][1]  # pairs 0.9, 0.6, 0.7
    result.pairs["pg_orders"][2] = (1.0, _run(850_000), _run(1))  # pairs 0.9, 0.6, 0.85
    assert verdicts(result, ["pg_orders"])[0][0]
