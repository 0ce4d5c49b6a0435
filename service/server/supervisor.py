"""What the ``--processes`` parent decides, as a pure function of what happened to it.

The parent of ``tablestream serve --processes N`` does four things besides waiting: it replaces
a child that ends, it gives up when replacements keep dying at once, it reloads on SIGHUP (new
children first, the old ones retired once the new ones have stayed up) and it undoes a reload
whose new children die. Those decisions live here, in a ``Supervisor`` that is told events —
``started``, ``exited``, ``stop``, ``reload``, ``tick`` — and answers with actions (``Spawn``,
``Kill``). It starts no process, sends no signal and reads no clock, so every decision is
unit-tested with made-up pids and times (tests/test_supervisor.py); ``processes.py`` is the
driver that turns actions into processes and signals and feeds the events back.
"""

from __future__ import annotations

import logging
import signal
from dataclasses import dataclass, field

__all__ = [
    "MAX_QUICK_DEATHS",
    "QUICK_DEATH_S",
    "RELOAD_OVERLAP_S",
    "Kill",
    "Spawn",
    "Supervisor",
    "is_clean",
]

QUICK_DEATH_S = 10.0  # a child that ends sooner than this after it started counts as a crash
MAX_QUICK_DEATHS = 5  # crashes in a row before the supervisor gives up (it cannot start children)
RELOAD_OVERLAP_S = 3.0  # on SIGHUP, old and new processes both accept this long (a start ~1 s)

_CLEAN = (0, -signal.SIGTERM, -signal.SIGINT)


def is_clean(code: int) -> bool:
    """Did a child end as asked (exit 0, or the stop signals), rather than fail?"""
    return code in _CLEAN


@dataclass(frozen=True)
class Spawn:
    """Start one child; tell the supervisor its pid with ``started(pid, now, trial)``."""

    trial: bool = False  # started by a reload: on trial until the reload is judged
    replaces: int = 0  # the pid of the child that ended, for the log line
    code: int = 0  # and how it ended


@dataclass(frozen=True)
class Kill:
    pid: int
    signum: int = signal.SIGTERM


Action = Spawn | Kill


@dataclass
class Supervisor:
    """The parent's state and decisions; see the module docstring."""

    processes: int
    children: dict[int, float] = field(default_factory=dict)  # pid -> when it started
    stopping: bool = False
    failed: int = 0  # children that ended badly while stopping, or the give-up
    quick_deaths: int = 0
    retiring: set[int] = field(default_factory=set)  # old ones a reload replaces: expected to end
    on_trial: set[int] = field(default_factory=set)  # new ones a reload started
    judge_at: float | None = None  # when the pending reload is judged
    log: list[tuple[int, str]] = field(default_factory=list)  # (level, message) for the driver

    @property
    def exit_status(self) -> int:
        return 1 if self.failed else 0

    def start(self) -> list[Action]:
        return [Spawn() for _ in range(self.processes)]

    def started(self, pid: int, now: float, trial: bool = False) -> list[Action]:
        self.children[pid] = now
        if trial:
            self.on_trial.add(pid)
        if self.stopping:  # the stop came while it was being started: it was not told
            return [Kill(pid)]
        return []

    def stop(self, signum: int = signal.SIGTERM) -> list[Action]:
        """SIGTERM/SIGINT: pass it on to every child; nothing is replaced any more."""
        self.stopping = True
        self.judge_at = None
        return [Kill(pid, signum) for pid in self.children]

    def reload(self, now: float) -> list[Action]:
        """SIGHUP: a new process per serving one; judged ``RELOAD_OVERLAP_S`` later."""
        if self.stopping or self.judge_at is not None:
            return []  # a reload already pending is judged first
        serving = [p for p in self.children if p not in self.retiring | self.on_trial]
        self.judge_at = now + RELOAD_OVERLAP_S
        self._note(logging.INFO, f"SIGHUP: new processes replace {_pids(serving)} if they stay up")
        return [Spawn(trial=True) for _ in serving]

    def tick(self, now: float) -> list[Action]:
        """Time passes: judge a pending reload once its new processes had time to start."""
        if self.judge_at is None or now < self.judge_at:
            return []
        self.judge_at = None
        fresh, self.on_trial = set(self.on_trial), set()
        alive = [p for p in fresh if p in self.children]
        if len(alive) < len(fresh):
            undo = alive
            self._note(
                logging.ERROR,
                f"SIGHUP reload failed: new process(es) ended within {RELOAD_OVERLAP_S:.0f} s; "
                "the old ones keep serving",
            )
        else:
            undo = [p for p in self.children if p not in fresh and p not in self.retiring]
            self._note(logging.INFO, f"SIGHUP reload: processes {_pids(undo)} drain and end")
        self.retiring.update(undo)
        return [Kill(pid) for pid in undo]

    def exited(self, pid: int, code: int, now: float) -> list[Action]:
        """A child ended with ``code`` (negative: killed by that signal)."""
        started = self.children.pop(pid, None)
        if started is None:
            return []
        clean = is_clean(code)
        if pid in self.retiring or pid in self.on_trial:
            self.retiring.discard(pid)  # a process on trial that ends is judged by the reload
            if not clean:
                self._note(
                    logging.ERROR, f"process {pid} exited with {code} during a SIGHUP reload"
                )
            return []
        if self.stopping:
            if not clean:
                self.failed += 1
                self._note(logging.ERROR, f"process {pid} exited with {code}")
            return []
        self.quick_deaths = self.quick_deaths + 1 if now - started < QUICK_DEATH_S else 0
        if self.quick_deaths >= MAX_QUICK_DEATHS:
            self._note(
                logging.ERROR,
                f"process {pid} exited with {code}; {self.quick_deaths} processes in a row ended "
                f"within {QUICK_DEATH_S:.0f} s of starting: giving up and stopping the others",
            )
            self.failed += 1
            return self.stop()
        return [Spawn(replaces=pid, code=code)]

    def _note(self, level: int, message: str) -> None:
        self.log.append((level, message))


def _pids(pids: list[int]) -> str:
    return " ".join(map(str, pids))
