"""SQLite assembling CSV lines itself vs the Python path, in process: ``python -m bench.sqlite_text``.

Issue 17 asked whether SQLite could hand over text, one object per row instead of one per cell,
to bring the demo ``orders`` CSV nearer the synthetic table. This measures the candidate before
anything is built on it: a ``SELECT`` of one expression per row that is the row's CSV line,
byte for byte what ``csvnulls`` writes with ``?null=empty``. SQLite is dynamically typed, so
every cell dispatches on ``typeof()``: integers ``CAST`` to text (exact); text quoted with
``instr``/``replace`` as the csv module quotes; NULL empty; BLOBs ``'\\x' || lower(hex())``;
REAL only where SQLite's ``%!.15g`` is provably Python's ``repr`` (a normal, finite, non-zero
value below 1e15 in magnitude whose 15-digit text round-trips and has no exponent: then it is
the shortest round-trip decimal), else the line is NULL (the row would fall back to Python).

Against it, the way the service writes the same CSV (``SELECT *``, ``fetchmany``,
``cells.format_column``, ``csvnulls``), and two floors of the SQL side that are not correct
CSV (no type dispatch, no quoting, no REAL check): a plain ``||`` of the columns and one
``printf('%s,…')``; and ``SELECT *`` fetched with nothing done. Each case runs in turn,
``--repeats`` times; figures are the minimum and the per-run ratio range to the Python path.
"""

from __future__ import annotations

import argparse
import hashlib
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from tablestream.sources.demo import create_demo_db
from tablestream.sources.sqlite import SQLiteTable, quote_identifier
from tablestream.stream.formats import csv_pieces

FETCH_ROWS = 128  # the service's default for SQLite (TABLESTREAM_FETCH_ROWS=0)


def _real(c: str) -> str:
    text = f"printf('%!.15g', {c})"
    return (
        f"CASE WHEN abs({c}) >= 2.2250738585072014e-308 AND abs({c}) < 1e15 "
        f"AND CAST({text} AS REAL) = {c} AND NOT instr({text}, 'e') THEN {text} END"
    )


def _text(c: str) -> str:
    return (
        f"CASE WHEN instr({c}, ',') OR instr({c}, '\"') OR instr({c}, char(10)) "
        f"OR instr({c}, char(13)) THEN '\"' || replace({c}, '\"', '\"\"') || '\"' ELSE {c} END"
    )


def csv_line_sql(columns: list[str]) -> str:
    """One expression: the row's CSV line (``null=empty``), NULL where Python must write it."""
    cells = []
    for name in columns:
        c = quote_identifier(name)
        cells.append(
            f"CASE typeof({c}) WHEN 'integer' THEN CAST({c} AS TEXT) WHEN 'text' THEN {_text(c)} "
            f"WHEN 'null' THEN '' WHEN 'real' THEN {_real(c)} ELSE '\\x' || lower(hex({c})) END"
        )
    return " || ',' || ".join(cells) + " || char(13, 10)"


def _python_path(db: Path, rows: int) -> tuple[str, int]:
    stream = SQLiteTable(db, "orders", fetch_rows=FETCH_ROWS).open(limit=rows)
    try:
        body = "".join(csv_pieces(stream, lambda: ""))
    finally:
        stream.close()
    return body.split("\r\n", 1)[1], 0


def _sql_lines(db: Path, rows: int, expression: str, join: bool) -> tuple[str, int]:
    conn = sqlite3.connect(db)
    try:
        cursor = conn.execute(f"SELECT {expression} FROM orders LIMIT {rows}")
        pieces, nulls = [], 0
        while fetched := cursor.fetchmany(FETCH_ROWS):
            if join:
                lines = [r[0] for r in fetched]
                nulls += lines.count(None)
                pieces.append("".join(line or "" for line in lines))
    finally:
        conn.close()
    return "".join(pieces), nulls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=Path("runs/bench-data/orders-1000000.sqlite3"))
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if not args.db.exists():
        print(f"writing the demo database to {args.db}", flush=True)
        create_demo_db(args.db, max(args.rows, 1_000_000))
    db, rows = args.db, args.rows
    columns = SQLiteTable(db, "orders").columns()
    quoted = [quote_identifier(c) for c in columns]
    cases: dict[str, Callable[[], tuple[str, int]]] = {
        "Python path (service)": lambda: _python_path(db, rows),
        "SQL line, correct": lambda: _sql_lines(db, rows, csv_line_sql(columns), True),
        "SQL floor: || of columns, not CSV": lambda: _sql_lines(
            db, rows, " || ',' || ".join(quoted), False
        ),
        "SQL floor: printf('%s,...'), not CSV": lambda: _sql_lines(
            db, rows, f"printf('{','.join(['%s'] * len(quoted))}', {', '.join(quoted)})", False
        ),
        "SELECT * fetched, nothing done": lambda: _sql_lines(db, rows, "*", False),
    }
    python_csv, _ = cases["Python path (service)"]()
    sql_csv, nulls = cases["SQL line, correct"]()
    same = hashlib.sha256(python_csv.encode()).digest() == hashlib.sha256(sql_csv.encode()).digest()
    print(f"{rows:,} orders rows; SQL lines identical to the Python path: {same} ({nulls} NULL)")
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeats):
        for name, case in cases.items():
            start = time.perf_counter()
            case()
            times[name].append(time.perf_counter() - start)
    base = times["Python path (service)"]
    for name, runs in times.items():
        ratios = sorted(t / b for t, b in zip(runs, base, strict=True))
        print(
            f"  {name:38s} min {min(runs):.3f} s, {ratios[0]:.2f}-{ratios[-1]:.2f}x the Python "
            "path's time, run by run"
        )
    ratio = min(times["SQL line, correct"]) / min(base)
    print(f"verdict: SQL-assembled CSV lines pay: {'yes' if ratio < 0.9 else 'NO'} ({ratio:.2f}x)")


if __name__ == "__main__":
    main()
