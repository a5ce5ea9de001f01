"""Checks a history of observations against the lifecycle; returns findings with witnesses.

One pass over the history in file order. Per-observer order is file order (each observer
writes sequentially); real-time order uses the monotonic send/receive stamps. State is kept
per task (a few fields) and per open stream connection, never per observation; tasks that
ended long before the newest observation are finalized and dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.contract import Lifecycle
from harness.findings import Finding
from harness.history import Observation

SUITE = "lifecycle"
CHECKS = {
    "LC-UNKNOWN-STATUS": "every status is an integer code of the lifecycle",
    "LC-INITIAL-STATUS": "a run answers with an initial status (Received, or Rejected)",
    "LC-REGRESSION": "per observer, statuses only move along the allowed transitions (skips allowed)",
    "LC-TERMINAL-FLIP": "once any client received a terminal status, every later request sees it",
    "LC-STREAM-SNAPSHOT-FIRST": "a stream's first event is a snapshot of the task",
    "LC-STREAM-AFTER-TERMINAL": "a stream sends nothing after its terminal update",
    "LC-STREAM-NO-TERMINAL": "a stream the server closed had sent the terminal update",
    "LC-HEARTBEAT-GAP": "no silence on a stream longer than the declared heartbeat bound",
    "LC-COMPLETED-OUTPUT": "a completed task has an output",
    "LC-FAILED-ERROR": "a failed or rejected task has an error",
    "LC-CANCEL-UNREQUESTED": "cancelling/cancelled appears only after a cancel was sent",
    "LC-CANCEL-IGNORED": "an acknowledged cancel of a running task ends Cancelled",
    "LC-LOST-TASK": "every accepted run reaches a terminal status within its deadline",
    "LC-DUPLICATE-ID": "task ids are unique",
    "LC-ISOLATION": "another key's task is invisible (404)",
    "LC-SETUP-WARM": "a run on a worker warm for its app and setup skips the setup phases",
}
MAX_FINDINGS_PER_CHECK = 25
FINALIZE_EVERY = 20_000


@dataclass
class InvariantOptions:
    heartbeat_bound_s: float | None = 15.0
    # A task that ended this long (history time) before the newest observation is finalized.
    horizon_s: float = 300.0


@dataclass
class CheckReport:
    findings: list[Finding] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    suppressed: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Task:
    run: Observation | None = None
    deadline_ns: int | None = None
    terminal: int | None = None
    terminal_obs: Observation | None = None
    latest_open: Observation | None = None  # the non-terminal observation sent last
    first_cancel_send: int | None = None
    cancel_ack: Observation | None = None
    first_cancel_status: Observation | None = None  # earliest-received 8/12
    last_recv: int = 0
    warm_expected: bool = False
    setup_seen: Observation | None = None
    flipped: bool = False


@dataclass(slots=True)
class _Conn:
    task: str | None
    events: int = 0
    last_recv: int = 0
    terminal: Observation | None = None
    after_terminal: bool = False


def _brief(obs: Observation) -> dict[str, Any]:
    return {k: v for k, v in asdict(obs).items() if v is not None and v != {}}


class Checker:
    """Feed observations with `add`, then `finish` for the report."""

    def __init__(self, lifecycle: Lifecycle, options: InvariantOptions | None = None) -> None:
        self.lc = lifecycle
        self.options = options or InvariantOptions()
        self.report = CheckReport()
        self._tasks: dict[str, _Task] = {}
        self._last: dict[tuple[str, str], Observation] = {}
        self._conns: dict[str, _Conn] = {}
        self._known = frozenset(lifecycle.statuses)
        self._terminal = frozenset(lifecycle.terminal)
        self._cancel_statuses = frozenset(s for s in (lifecycle.cancelling, lifecycle.cancelled)
                                          if s is not None)
        self._setup = frozenset(lifecycle.setup_phases)
        self._newest = 0
        self._count = 0
        self._indeterminate = 0
        self._stats: dict[str, int] = {"tasks": 0, "terminal": 0, "lost": 0, "unresolved": 0,
                                       "warm_expected": 0, "warm_skipped": 0}
        self._to_terminal_ms: list[float] = []
        self._reported: set[tuple[str, str]] = set()
        self._per_check: dict[str, int] = {}

    # -- reporting -------------------------------------------------------------------------

    def _find(self, check: str, message: str, witness: list[Observation], task: str | None) -> None:
        if task is not None:
            # One finding per task and check: the first witness is the clearest.
            if (check, task) in self._reported:
                return
            self._reported.add((check, task))
        if self._per_check.get(check, 0) >= MAX_FINDINGS_PER_CHECK:
            self.report.suppressed[check] = self.report.suppressed.get(check, 0) + 1
            return
        self._per_check[check] = self._per_check.get(check, 0) + 1
        self.report.findings.append(Finding(
            check=check, suite=SUITE, message=message, task_id=task,
            evidence={"witness": [_brief(o) for o in witness]}))

    # -- the pass --------------------------------------------------------------------------

    def add(self, obs: Observation) -> None:
        self._count += 1
        if obs.recv_ns is None or obs.outcome != "ok":
            self._indeterminate += 1
            return
        if obs.recv_ns > self._newest:
            self._newest = obs.recv_ns
        if obs.extra.get("probe") == "foreign":
            if obs.http != 404:
                self._find("LC-ISOLATION", f"another key's {obs.channel} of task {obs.task} answered "
                           f"HTTP {obs.http}, not 404", [obs], obs.task)
            return
        if obs.conn is not None:
            self._stream_event(obs)
        task_id = obs.task
        if task_id is None:
            return
        task = self._tasks.get(task_id)
        if task is None:
            task = self._tasks[task_id] = _Task()
            self._stats["tasks"] += 1
        task.last_recv = max(task.last_recv, obs.recv_ns)
        if obs.channel == "run" and obs.http is not None and obs.http < 300:
            self._run(task, task_id, obs)
        if obs.channel == "cancel":
            self._cancel(task, obs)
        status = obs.status
        if status is None or obs.kind in ("heartbeat", "close", "invalid"):
            self._maybe_finalize()
            return
        if type(status) is not int or status not in self._known:
            self._find("LC-UNKNOWN-STATUS", f"{obs.channel} by {obs.observer} showed status "
                       f"{status!r}, which is not an integer code of the lifecycle", [obs], task_id)
            return
        self._order(task, task_id, obs, status)
        self._realtime(task, task_id, obs, status)
        self._content(task, task_id, obs, status)
        self._maybe_finalize()

    def _run(self, task: _Task, task_id: str, obs: Observation) -> None:
        if task.run is not None:
            self._find("LC-DUPLICATE-ID", f"two accepted runs returned the same task id {task_id}",
                       [task.run, obs], task_id)
            return
        task.run = obs
        deadline = obs.extra.get("deadline_s")
        if isinstance(deadline, int | float):
            task.deadline_ns = obs.send_ns + int(deadline * 1e9)
        task.warm_expected = bool(obs.extra.get("warm_expected"))
        if task.warm_expected:
            self._stats["warm_expected"] += 1
        if type(obs.status) is int and obs.status in self._known and obs.status not in self.lc.initial:
            self._find("LC-INITIAL-STATUS", f"the run answered status {self.lc.label(obs.status)}; "
                       f"a new task starts as one of {self.lc.initial}", [obs], task_id)

    def _cancel(self, task: _Task, obs: Observation) -> None:
        if task.first_cancel_send is None or obs.send_ns < task.first_cancel_send:
            task.first_cancel_send = obs.send_ns
        acked = obs.http is not None and 200 <= obs.http < 300
        if acked and task.cancel_ack is None and (obs.status is None or obs.status not in self._terminal):
            task.cancel_ack = obs

    def _order(self, task: _Task, task_id: str, obs: Observation, status: int) -> None:
        who = (obs.conn or obs.observer, task_id)
        before = self._last.get(who)
        self._last[who] = obs
        if before is None or type(before.status) is not int:
            return
        if not self.lc.may_follow(before.status, status):
            self._find("LC-REGRESSION", f"{obs.observer} saw task {task_id} go from "
                       f"{self.lc.label(before.status)} to {self.lc.label(status)}, which the "
                       "lifecycle does not allow", [before, obs], task_id)

    def _realtime(self, task: _Task, task_id: str, obs: Observation, status: int) -> None:
        assert obs.recv_ns is not None
        if status in self._terminal:
            if task.terminal is not None and status != task.terminal and not task.flipped:
                task.flipped = True
                assert task.terminal_obs is not None
                self._find("LC-TERMINAL-FLIP", f"task {task_id} was seen ending as both "
                           f"{self.lc.label(task.terminal)} and {self.lc.label(status)}",
                           [task.terminal_obs, obs], task_id)
            if task.terminal_obs is None or obs.recv_ns < (task.terminal_obs.recv_ns or 0):
                if task.terminal is None:
                    task.terminal = status
                    self._stats["terminal"] += 1
                    if task.run is not None:
                        self._to_terminal_ms.append((obs.recv_ns - task.run.send_ns) / 1e6)
                task.terminal_obs = obs
                self._stale_check(task, task_id)
        else:
            if task.latest_open is None or obs.send_ns > task.latest_open.send_ns:
                task.latest_open = obs
                self._stale_check(task, task_id)

    def _stale_check(self, task: _Task, task_id: str) -> None:
        term, late = task.terminal_obs, task.latest_open
        if term is None or late is None or task.flipped:
            return
        assert term.recv_ns is not None
        if late.send_ns > term.recv_ns:
            task.flipped = True
            self._find("LC-TERMINAL-FLIP", f"{late.observer} sent a request after {term.observer} "
                       f"had received the terminal status {self.lc.label(term.status)} of task "
                       f"{task_id}, and saw {self.lc.label(late.status)}", [term, late], task_id)

    def _content(self, task: _Task, task_id: str, obs: Observation, status: int) -> None:
        if status == self.lc.completed and obs.output is False:
            self._find("LC-COMPLETED-OUTPUT", f"task {task_id} is completed without an output",
                       [obs], task_id)
        if status in (self.lc.failed, self.lc.rejected) and obs.error is False:
            self._find("LC-FAILED-ERROR", f"task {task_id} is {self.lc.label(status)} without an "
                       "error message", [obs], task_id)
        if status in self._cancel_statuses:
            first = task.first_cancel_status
            if first is None or (obs.recv_ns or 0) < (first.recv_ns or 0):
                task.first_cancel_status = obs
        if task.warm_expected and task.setup_seen is None:
            trail = obs.trail or []
            if status in self._setup or any(s in self._setup for s in trail):
                task.setup_seen = obs

    def _stream_event(self, obs: Observation) -> None:
        assert obs.conn is not None and obs.recv_ns is not None
        conn = self._conns.get(obs.conn)
        if conn is None:
            conn = self._conns[obs.conn] = _Conn(obs.task)
            if obs.kind != "update":
                self._find("LC-STREAM-SNAPSHOT-FIRST", f"the first event of {obs.channel} stream "
                           f"{obs.conn} was a {obs.kind}, not a snapshot of the task", [obs], obs.task)
        bound = self.options.heartbeat_bound_s
        if conn.events and bound is not None and obs.recv_ns - conn.last_recv > bound * 1e9:
            gap = (obs.recv_ns - conn.last_recv) / 1e9
            self._find("LC-HEARTBEAT-GAP", f"{obs.channel} stream {obs.conn} was silent for {gap:.1f} s "
                       f"(bound {bound:g} s)", [obs], obs.task)
        conn.events += 1
        conn.last_recv = obs.recv_ns
        if obs.kind == "close":
            if conn.terminal is None:
                self._find("LC-STREAM-NO-TERMINAL", f"the server closed {obs.channel} stream {obs.conn} "
                           f"of task {obs.task} without a terminal update", [obs], obs.task)
            del self._conns[obs.conn]
            return
        if conn.terminal is not None and obs.kind in ("update", "invalid") and not conn.after_terminal:
            conn.after_terminal = True
            what = "an update" if obs.kind == "update" else "a non-JSON line"
            self._find("LC-STREAM-AFTER-TERMINAL", f"{obs.channel} stream {obs.conn} sent {what} "
                       "after its terminal update", [conn.terminal, obs], obs.task)
        if obs.kind == "update" and type(obs.status) is int and obs.status in self._terminal:
            if conn.terminal is None:
                conn.terminal = obs

    # -- finalizing ------------------------------------------------------------------------

    def _maybe_finalize(self) -> None:
        if self._count % FINALIZE_EVERY:
            return
        cutoff = self._newest - int(self.options.horizon_s * 1e9)
        done = [tid for tid, t in self._tasks.items()
                if t.terminal_obs is not None and t.last_recv < cutoff]
        for tid in done:
            self._finalize(tid, self._tasks.pop(tid))
        if done:
            gone = set(done)
            self._last = {k: v for k, v in self._last.items() if k[1] not in gone}

    def _finalize(self, task_id: str, task: _Task) -> None:
        first = task.first_cancel_status
        if first is not None and (task.first_cancel_send is None
                                  or (first.recv_ns or 0) < task.first_cancel_send):
            self._find("LC-CANCEL-UNREQUESTED", f"task {task_id} showed {self.lc.label(first.status)} "
                       "before any cancel was sent", [first], task_id)
        ack = task.cancel_ack
        if ack is not None and task.terminal is not None and task.terminal != self.lc.cancelled:
            term = task.terminal_obs
            assert term is not None and term.recv_ns is not None
            if term.recv_ns > ack.send_ns:  # it had not ended before the cancel was sent
                self._find("LC-CANCEL-IGNORED", f"the cancel of task {task_id} was acknowledged but the "
                           f"task ended {self.lc.label(task.terminal)}", [ack, term], task_id)
        if task.warm_expected:
            if task.setup_seen is not None:
                self._find("LC-SETUP-WARM", f"task {task_id} ran with the setup its worker was warm for, "
                           f"but went through {self.lc.label(task.setup_seen.status)}",
                           [task.setup_seen], task_id)
            elif task.terminal is not None:
                self._stats["warm_skipped"] += 1
        if task.run is not None and task.terminal is None:
            if task.deadline_ns is not None and task.last_recv >= task.deadline_ns:
                self._stats["lost"] += 1
                self._find("LC-LOST-TASK", f"task {task_id} was accepted but no terminal status was "
                           "seen by its deadline", [task.run], task_id)
            else:
                self._stats["unresolved"] += 1

    def finish(self) -> CheckReport:
        for task_id, task in self._tasks.items():
            self._finalize(task_id, task)
        self._tasks.clear()
        times = sorted(self._to_terminal_ms)
        stats = self._stats
        self.report.metrics = {
            "observations": self._count,
            "indeterminate": self._indeterminate,
            **stats,
            "warm_hit_rate": round(stats["warm_skipped"] / stats["warm_expected"], 3)
            if stats["warm_expected"] else None,
            "time_to_terminal_ms": {
                "p50": _pct(times, 0.5), "p95": _pct(times, 0.95), "max": times[-1] if times else None,
            },
            "suppressed_findings": dict(self.report.suppressed),
        }
        return self.report


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return round(values[min(len(values) - 1, int(q * len(values)))], 3)


def check_history(observations: Iterable[Observation], lifecycle: Lifecycle,
                  options: InvariantOptions | None = None) -> CheckReport:
    """Check a whole history; the observations may come from a streaming reader."""
    checker = Checker(lifecycle, options)
    for obs in observations:
        checker.add(obs)
    return checker.finish()
