"""The --processes parent's decisions, told events with made-up pids and times (no processes)."""

import signal

from tablestream.server.supervisor import (
    MAX_QUICK_DEATHS,
    QUICK_DEATH_S,
    RELOAD_OVERLAP_S,
    Kill,
    Spawn,
    Supervisor,
)


def _running(*pids: int, at: float = 0.0) -> Supervisor:
    supervisor = Supervisor(processes=len(pids))
    assert supervisor.start() == [Spawn()] * len(pids)
    for pid in pids:
        assert supervisor.started(pid, at) == []
    return supervisor


def test_a_child_that_dies_is_replaced_and_the_log_names_it():
    supervisor = _running(1, 2)
    assert supervisor.exited(1, -9, now=100.0) == [Spawn(replaces=1, code=-9)]
    assert supervisor.exit_status == 0


def test_children_dying_at_once_again_and_again_make_it_give_up_and_stop_the_rest():
    supervisor = _running(1, 2)
    now, pid = 0.0, 100
    for death in range(1, MAX_QUICK_DEATHS):
        victim = 1 if death == 1 else pid
        assert supervisor.exited(victim, 1, now) == [Spawn(replaces=victim, code=1)]
        pid += 1
        supervisor.started(pid, now)
    actions = supervisor.exited(pid, 1, now + QUICK_DEATH_S / 2)
    assert actions == [Kill(2)]
    assert supervisor.stopping and supervisor.exit_status == 1
    assert any("giving up" in message for _, message in supervisor.log)


def test_a_death_long_after_start_resets_the_count_of_quick_deaths():
    supervisor = _running(1, 2)
    supervisor.exited(1, 1, now=1.0)
    supervisor.started(3, 1.0)
    supervisor.exited(3, 1, now=1.0 + QUICK_DEATH_S + 1)
    assert supervisor.quick_deaths == 0


def test_stop_passes_the_signal_on_and_replaces_nothing_after():
    supervisor = _running(1, 2)
    assert supervisor.stop(signal.SIGINT) == [Kill(1, signal.SIGINT), Kill(2, signal.SIGINT)]
    assert supervisor.exited(1, -signal.SIGINT, now=5.0) == []
    assert supervisor.exited(2, 0, now=5.0) == []
    assert not supervisor.children and supervisor.exit_status == 0


def test_a_child_that_fails_during_the_stop_makes_the_exit_status_1():
    supervisor = _running(1)
    supervisor.stop()
    supervisor.exited(1, 3, now=1.0)
    assert supervisor.exit_status == 1


def test_a_child_started_while_the_stop_arrived_is_stopped_too():
    supervisor = _running(1)
    supervisor.stop()
    assert supervisor.started(7, 1.0) == [Kill(7)]


def test_a_reload_retires_the_old_children_once_the_new_ones_stayed_up():
    supervisor = _running(1, 2)
    assert supervisor.reload(now=10.0) == [Spawn(trial=True), Spawn(trial=True)]
    supervisor.started(3, 10.0, trial=True)
    supervisor.started(4, 10.0, trial=True)
    assert supervisor.tick(10.0 + RELOAD_OVERLAP_S / 2) == []  # not judged yet
    assert supervisor.tick(10.0 + RELOAD_OVERLAP_S) == [Kill(1), Kill(2)]
    assert supervisor.exited(1, -signal.SIGTERM, now=14.0) == []  # retired: not replaced
    assert supervisor.exited(2, 0, now=14.0) == []
    assert set(supervisor.children) == {3, 4}


def test_a_reload_whose_new_children_die_is_undone_and_the_old_ones_keep_serving():
    supervisor = _running(1, 2)
    supervisor.reload(now=10.0)
    supervisor.started(3, 10.0, trial=True)
    supervisor.started(4, 10.0, trial=True)
    assert supervisor.exited(3, 1, now=10.5) == []  # on trial: judged by the reload, not replaced
    assert supervisor.tick(10.0 + RELOAD_OVERLAP_S) == [Kill(4)]
    assert any("SIGHUP reload failed" in message for _, message in supervisor.log)
    supervisor.exited(4, -signal.SIGTERM, now=13.5)
    assert set(supervisor.children) == {1, 2}


def test_a_second_sighup_during_a_reload_waits_for_the_first_to_be_judged():
    supervisor = _running(1)
    supervisor.reload(now=0.0)
    assert supervisor.reload(now=1.0) == []


def test_a_stop_during_a_reload_cancels_its_judgement():
    supervisor = _running(1)
    supervisor.reload(now=0.0)
    supervisor.started(2, 0.0, trial=True)
    assert supervisor.stop() == [Kill(1), Kill(2)]
    assert supervisor.tick(100.0) == []
