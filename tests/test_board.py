"""The --processes siblings' board: a page's question or report reaches the stream's process.

Two ``Board`` views of one directory with different process ids stand for two children; the
real processes are in tests/test_processes.py.
"""

from __future__ import annotations

import logging
import threading
import time

import pytest

from tablestream.observe.board import Board
from tablestream.observe.status import RecentStreams
from tablestream.stream.pacing import PATIENCE, Pacers


class _Rows:
    """Batches of 100 rows, as many as asked."""

    columns = ("a",)

    def __init__(self, batches: int) -> None:
        self.rows_read = 0
        self._batches = batches

    def batches(self):
        for _ in range(self._batches):
            self.rows_read += 100
            yield [("x",)] * 100

    def close(self) -> None:
        pass


def test_a_stream_recorded_by_one_process_is_answered_by_its_sibling(tmp_path):
    serving = RecentStreams(board=Board(tmp_path, pid=101))
    sibling = RecentStreams(board=Board(tmp_path, pid=102))
    recorder = serving.observer("orders", "page-1", owner="token:alice")
    assert sibling.get("page-1", "token:alice") == {
        "table": "orders",
        "outcome": "in_progress",
        "rows_sent": 0,
    }
    recorder.finished("completed", 1234)
    assert sibling.get("page-1", "token:alice") == {
        "table": "orders",
        "outcome": "completed",
        "rows_sent": 1234,
    }
    # Another caller's stream answers like one never seen, on the sibling as here.
    assert sibling.get("page-1", "token:mallory") is None
    assert serving.get("page-1", "token:mallory") is None
    assert sibling.get("page-2", "token:alice") is None


def test_a_request_id_never_becomes_a_path(tmp_path):
    board = Board(tmp_path / "board", pid=7)
    (tmp_path / "board").mkdir()
    for request_id in ("../../escape", "/etc/passwd", "a\x00b", "é" * 300, ""):
        record = {"table": "t", "outcome": "completed", "rows_sent": 1, "owner": None}
        board.post(request_id, record)
        assert board.find(request_id)["request_id"] == request_id
    assert not (tmp_path / "escape").exists()
    names = [p.name for p in (tmp_path / "board").iterdir()]
    assert len(names) == 5 and all(len(n) == len("0" * 32 + ".json") for n in names), names


def test_a_process_forgets_its_oldest_streams_on_the_board_too(tmp_path):
    serving = RecentStreams(capacity=2, board=Board(tmp_path, pid=101))
    sibling = RecentStreams(board=Board(tmp_path, pid=102))
    for n in range(3):
        serving.observer("t", f"page-{n}").finished("completed", n)
    assert sibling.get("page-0") is None
    assert sibling.get("page-2") == {"table": "t", "outcome": "completed", "rows_sent": 2}
    assert len(list(tmp_path.glob("*.json"))) == 2


def test_forgetting_a_stream_leaves_a_siblings_later_stream_of_the_same_id(tmp_path):
    first = RecentStreams(capacity=1, board=Board(tmp_path, pid=101))
    second = RecentStreams(board=Board(tmp_path, pid=102))
    first.observer("t", "same-id").finished("completed", 1)
    second.observer("u", "same-id").finished("completed", 2)
    first.observer("t", "other")  # pushes "same-id" out of the first process
    assert first.get("same-id") == {"table": "u", "outcome": "completed", "rows_sent": 2}


def test_the_parent_removes_the_records_of_a_child_that_ended(tmp_path):
    RecentStreams(board=Board(tmp_path, pid=101)).observer("t", "of-101")
    RecentStreams(board=Board(tmp_path, pid=102)).observer("t", "of-102")
    assert Board.forget_process(tmp_path, 101) == 1
    reader = Board(tmp_path, pid=103)
    assert reader.find("of-101") is None and reader.find("of-102") is not None


def test_a_board_that_cannot_be_written_costs_the_siblings_view_not_the_stream(tmp_path, caplog):
    recent = RecentStreams(board=Board(tmp_path / "gone", pid=101))
    with caplog.at_level(logging.WARNING, logger="tablestream"):
        recorder = recent.observer("t", "page-1")
        recorder.finished("completed", 3)
    assert recent.get("page-1") == {"table": "t", "outcome": "completed", "rows_sent": 3}
    assert "could not write" in caplog.text


def test_a_report_reaches_the_siblings_stream_only_for_its_caller_while_it_runs(tmp_path):
    serving, sibling = Board(tmp_path, pid=101), Board(tmp_path, pid=102)
    recent = RecentStreams(board=serving)
    recorder = recent.observer("t", "page-1", owner="token:alice")
    poll = serving.reports("page-1", "token:alice")
    assert poll() is None
    assert not sibling.report("page-1", "token:mallory", 5)
    assert not sibling.report("page-2", "token:alice", 5)
    assert not serving.report("page-1", "token:alice", 5)  # its own: the pacer heard it
    assert sibling.report("page-1", "token:alice", 5)
    assert poll() == 5
    assert poll() is None  # each report once
    assert sibling.report("page-1", "token:alice", 9)
    assert poll() == 9
    recorder.finished("completed", 100)
    assert not sibling.report("page-1", "token:alice", 10)


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
def test_a_page_whose_reports_reach_a_sibling_is_still_held_near_its_parser(tmp_path):
    RecentStreams(board=Board(tmp_path, pid=101)).observer("t", "page-1")
    serving = Pacers(stuck=60, board=Board(tmp_path, pid=101))
    sibling = Pacers(stuck=60, board=Board(tmp_path, pid=102))
    paced = serving.pace(_Rows(6), "page-1", None, budget=150)  # type: ignore[arg-type]
    assert sibling.heard("page-1", None, 0)  # the first report went to the sibling
    got: list[int] = []
    reader = threading.Thread(target=lambda: got.extend(len(b) for b in paced.batches()))
    reader.start()
    try:
        deadline = time.monotonic() + PATIENCE - 0.5
        while time.monotonic() < deadline:  # reports keep coming, all to the sibling
            assert sibling.heard("page-1", None, 0)
            time.sleep(0.2)
        assert got == [100], got  # held: the 2nd batch would be 200 rows ahead of row 0
        assert sibling.heard("page-1", None, 600)
        reader.join(5)
        assert not reader.is_alive() and got == [100] * 6
    finally:
        paced.close()
        reader.join(5)
