"""Checks a history of observations against the lifecycle; returns findings with witnesses.

One pass over the history in file order. Per-observer order is file order (each observer
writes sequentially); real-time order uses the monotonic send/receive stamps. State is kept
per task (a few fields) and per open stream connection, never per observation; tasks that
ended long before the newest observation are finalized and dropped.

Records in: Observations, or the decoded records of `read_records` (anything with
Observation's fields, `ObservationRecord`); witnesses show every field either way. Streamed
from a file (`read_records`), no record is kept past its block of the reader: a kept record
would be freed seconds of history later, out of the cache, object by object (a third of the
time). Witnesses are kept as positions (with the few fields the rules read later beside them),
each observer's last observation as its status only, and `finish` reads the findings'
witnesses again from the file (an observer's last one found among its task's observations).
So the pass reads only the fields it checks (`HistoryRecords.checked`): a witness, even the
record at hand, is kept by position and read again in full.

Speed (benchmarks/checker.py): `add_all` is the hot path, about a microsecond per
observation. The common case, a poll showing a known status of a task already seen, runs
inline with no allocation; the rare cases (runs, cancels, stream events, findings) keep
their own methods. Ended tasks wait in a heap keyed by their last receive time, so dropping
them costs O(log n) per task instead of a scan of every task held; the per-observer state
lives in its task and goes with it.

Each rule is also written plainly in `lifecycle_reference`; tests/checks/test_lifecycle_reference.py
checks that both find the same (check, task) pairs on random histories.
"""

from __future__ import annotations

import bisect
import contextlib
import copy
import gc
import heapq
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from harness.checks.streams import StreamEnd
from harness.contract import Lifecycle
from harness.findings import Finding
from harness.history import CheckedRecord, HistoryError, HistoryRecords, Observation, ObservationRecord

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
    "LC-PROGRESS-GAP": "a live stream sends a non-heartbeat update at least every 20 s",
    "LC-SDK-STREAM-IDLE": "no heartbeat arrives after 30 s without an update (the Python SDK drops "
                          "such a stream)",
    "LC-COMPLETED-OUTPUT": "a completed task has an output",
    "LC-FAILED-ERROR": "a failed or rejected task has an error",
    "LC-CANCEL-UNREQUESTED": "cancelling/cancelled appears only after a cancel was sent",
    "LC-CANCEL-IGNORED": "an acknowledged cancel of a running task ends Cancelled",
    "LC-LOST-TASK": "every accepted run reaches a terminal status within its deadline",
    "LC-DUPLICATE-ID": "task ids are unique",
    "LC-ISOLATION": "another key's task is invisible (404)",
    "LC-SETUP-WARM": "a run on a worker warm for its app and setup skips the setup phases",
    "LC-SDK-UNKNOWN-TERMINAL": "no task ends at a status an official SDK does not know as terminal "
                               "(that SDK would wait forever)",
}
# An SDK hazard, not a broken promise: the target may end a task so (Rejected, 13).
SEVERITY: dict[str, Literal["error", "warning", "info"]] = {"LC-SDK-UNKNOWN-TERMINAL": "warning"}
MAX_FINDINGS_PER_CHECK = 25
FINALIZE_EVERY = 20_000
_RUN_OR_CANCEL = frozenset({"run", "cancel"})


@dataclass
class InvariantOptions:
    heartbeat_bound_s: float | None = 15.0
    # The contract's promise: a non-heartbeat update at least this often on a live stream.
    progress_bound_s: float | None = 20.0
    # The Python SDK's idle check: a heartbeat this long after the last update drops the stream.
    sdk_idle_s: float | None = 30.0
    # A task that ended this long (history time) before the newest observation is finalized.
    horizon_s: float = 300.0


@dataclass
class CheckReport:
    findings: list[Finding] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    suppressed: dict[str, int] = field(default_factory=dict)


# A kept observation (a witness for later): the record, or its position in the checker's count
# when the source can read it again (`HistoryRecords`, see `Checker._add_all`). The fields the
# rules read later are kept beside it.
_Kept = CheckedRecord | int


@dataclass(slots=True)
class _Task:
    # First what nearly every observation reads or writes: few cache lines per task touched.
    last_recv: int = 0
    # Per observer (or stream connection): the last observation with a known status. Kept by
    # position, only its status (no object kept per observation: a tuple with its position would
    # be freed seconds of history later, out of the cache, a tenth of the time); the witness of a
    # finding is then found again by reading the task's observations (`_LastOf`).
    last: dict[str, Any] = field(default_factory=dict)
    latest_open: _Kept | None = None  # the non-terminal observation sent last
    latest_open_send: int = 0
    terminal_obs: _Kept | None = None  # the terminal observation received first
    warm_expected: bool = False
    setup_seen: _Kept | None = None
    serial: int = 0  # creation order: tasks are finalized in the order they were first seen
    first_seen: int = 0  # the position of its first observation (see `last`)
    run: _Kept | None = None
    run_send: int = 0
    deadline_ns: int | None = None
    terminal: int | None = None
    terminal_recv: int = 0
    first_cancel_send: int | None = None
    cancel_ack: _Kept | None = None  # the earliest-sent acknowledged cancel
    cancel_ack_send: int = 0
    first_cancel_status: _Kept | None = None  # earliest-received 8/12
    first_cancel_recv: int = 0
    first_cancel_code: int = 0
    setup_status: int = 0
    flipped: bool = False


@dataclass(slots=True)
class _Conn:
    task: str | None
    events: int = 0
    last_recv: int = 0
    last_update: int = 0  # the last update's (or the first event's) receive time
    quiet_found: int = 0  # bit 1: LC-PROGRESS-GAP reported, bit 2: LC-SDK-STREAM-IDLE
    terminal: _Kept | None = None
    end: StreamEnd = field(default_factory=StreamEnd)


def _first(item: tuple[int, str, _Task]) -> int:
    return item[0]


def _finding(check: str, message: _Message, briefs: list[dict[str, Any]], task: str | None) -> Finding:
    return Finding(check=check, severity=SEVERITY.get(check, "error"), suite=SUITE,
                   message=message if isinstance(message, str) else message(briefs), task_id=task,
                   evidence={"witness": briefs})


# Every field of a record, in order: what a witness shows (Observation's own: they follow its fields).
_WITNESS_FIELDS = tuple(spec.name for spec in fields(Observation))


def _brief(obs: CheckedRecord) -> dict[str, Any]:
    """A witness: the set fields of an Observation or of a decoded record (copies, as asdict).
    Never a lean record of `HistoryRecords.checked`: those are kept by position."""
    values = ((name, getattr(obs, name)) for name in _WITNESS_FIELDS)
    return {k: copy.deepcopy(v) for k, v in values if v is not None and v != {}}


# A finding's message, or how to write it from its witnesses (when some are read again at the end).
_Message = str | Callable[[list[dict[str, Any]]], str]


@dataclass(frozen=True, slots=True)
class _LastOf:
    """A witness kept by what it was: the last observation with a known status of an observer
    (or connection) of a task, between two positions. Found by `Checker._read_last`."""
    task: str
    who: str
    first: int
    until: int


@dataclass(slots=True)
class _Pending:
    """A finding whose witnesses include kept positions: written by `finish` once they are read."""
    index: int  # its place in the report's findings
    check: str
    message: _Message
    witness: list[dict[str, Any] | int | _LastOf]  # briefs, or where to read them from
    task: str | None


class Checker:
    """Feed observations with `add`, then `finish` for the report."""

    def __init__(self, lifecycle: Lifecycle, options: InvariantOptions | None = None) -> None:
        self.lc = lifecycle
        self.options = options or InvariantOptions()
        self.report = CheckReport()
        self._tasks: dict[str, _Task] = {}
        self._conns: dict[str, _Conn] = {}
        self._known = frozenset(lifecycle.statuses)
        self._terminal = frozenset(lifecycle.terminal)
        self._cancel_statuses = frozenset(s for s in (lifecycle.cancelling, lifecycle.cancelled)
                                          if s is not None)
        self._setup = frozenset(lifecycle.setup_phases)
        # What may follow each known status: itself and the transitive closure (Lifecycle.may_follow).
        self._follows = {s: lifecycle.reachable.get(s, frozenset()) | {s} for s in lifecycle.statuses}
        self._failed = frozenset(s for s in (lifecycle.failed, lifecycle.rejected) if s is not None)
        # Statuses that _content looks at beyond the warm-setup rule.
        # Terminal statuses some SDK does not know (-> the SDKs left waiting).
        self._stranding = {s: lifecycle.clients_waiting_on(s) for s in lifecycle.terminal
                           if lifecycle.clients_waiting_on(s)}
        self._content_statuses = frozenset({lifecycle.completed, *self._failed, *self._cancel_statuses,
                                            *self._stranding})
        bound = self.options.heartbeat_bound_s
        self._bound_ns = None if bound is None else bound * 1e9
        self._horizon_ns = int(self.options.horizon_s * 1e9)
        # A live stream quiet for less than this is not judged by `_quiet` (no call).
        quiet = [b for b in (self.options.progress_bound_s, self.options.sdk_idle_s) if b is not None]
        self._quiet_ns = min(quiet) * 1e9 if quiet else float("inf")
        self._newest = 0
        self._count = 0
        self._indeterminate = 0
        self._stats: dict[str, int] = {"tasks": 0, "terminal": 0, "lost": 0, "unresolved": 0,
                                       "warm_expected": 0, "warm_skipped": 0}
        self._to_terminal_ms = array("d")
        self._reported: set[tuple[str, str]] = set()
        self._per_check: dict[str, int] = {}
        self._serial = 0
        # Tasks with a terminal status, by a receive time at or before their last one.
        self._ended: list[tuple[int, int, str, _Task]] = []
        self._peak_tasks = 0
        self._peak_conns = 0
        # Sources whose records are kept by position: (the count before their first, source).
        self._sources: list[tuple[int, HistoryRecords]] = []
        self._pending: list[_Pending] = []

    def peak_held(self) -> tuple[int, int]:
        """The most task states and open stream states held at once so far (memory use)."""
        return max(self._peak_tasks, len(self._tasks)), max(self._peak_conns, len(self._conns))

    # -- reporting -------------------------------------------------------------------------

    def _find(self, check: str, message: _Message, witness: list[_Kept | _LastOf],
              task: str | None) -> None:
        if task is not None:
            # One finding per task and check: the first witness is the clearest.
            if (check, task) in self._reported:
                return
            self._reported.add((check, task))
        if self._per_check.get(check, 0) >= MAX_FINDINGS_PER_CHECK:
            self.report.suppressed[check] = self.report.suppressed.get(check, 0) + 1
            return
        self._per_check[check] = self._per_check.get(check, 0) + 1
        briefs = [o if isinstance(o, int | _LastOf) else _brief(o) for o in witness]
        done = [o for o in briefs if isinstance(o, dict)]
        if len(done) == len(briefs):
            self.report.findings.append(_finding(check, message, done, task))
            return
        # Kept by position: read again at the end (`_write_pending`); a placeholder keeps its place.
        self._pending.append(_Pending(len(self.report.findings), check, message, briefs, task))
        self.report.findings.append(_finding(check, "", [], task))

    def _write_pending(self) -> None:
        """The findings with kept positions among their witnesses: their records read again."""
        if not self._pending:
            return
        for pending in self._pending:
            pending.witness = [self._read_last(o) if isinstance(o, _LastOf) else o for o in pending.witness]
        wanted = sorted({o for pending in self._pending for o in pending.witness if isinstance(o, int)})
        read: dict[int, ObservationRecord] = {}
        for base, source in self._sources:
            end = base + source.read_count()
            mine = wanted[bisect.bisect_right(wanted, base):bisect.bisect_right(wanted, end)]
            read.update((base + n, record) for n, record in source.reread(n - base for n in mine).items())
        for pending in self._pending:
            briefs = [_brief(read[o]) if isinstance(o, int) else o for o in pending.witness]
            self.report.findings[pending.index] = _finding(
                pending.check, pending.message, [o for o in briefs if isinstance(o, dict)], pending.task)
        self._pending.clear()

    def _read_last(self, mark: _LastOf) -> int:
        """The position of what `_LastOf` names: the task's observations are read again from the
        sources kept by position (an observer's last one kept by position was read from one)."""
        found = None
        for base, source in self._sources:
            end = base + source.read_count()
            first, until = max(mark.first, base + 1), min(mark.until, end)
            for n, record in source.scan(first - base, until - base) if first <= until else ():
                if record.task == mark.task and (record.conn or record.observer) == mark.who \
                        and self._kept_as_last(record):
                    found = base + n
        if found is None:
            raise HistoryError(f"the observation before {mark.until} of task {mark.task} by {mark.who} "
                               "was not found again (the history changed since it was read)")
        return found

    def _kept_as_last(self, obs: ObservationRecord) -> bool:
        """Whether the pass keeps this observation as its observer's last one: the tests `_add_all`
        makes on the way to `last` (inlined there), in order."""
        if obs.recv_ns is None or obs.outcome != "ok" or obs.task is None:
            return False
        extra = obs.extra
        if extra and "probe" in extra and extra["probe"] == "foreign":
            return False
        status, kind = obs.status, obs.kind
        if status is None or (kind is not None and kind in ("heartbeat", "close", "invalid")):
            return False
        return type(status) is int and status in self._known

    # -- the pass --------------------------------------------------------------------------

    def add(self, obs: ObservationRecord) -> None:
        self._add_all((obs,))

    def add_all(self, observations: Iterable[ObservationRecord]) -> None:
        """Check observations in order (any iterable: a list, or `read_history` streaming),
        with the garbage collector's young generation collected rarely meanwhile."""
        with _rare_collections():
            self._add_all(observations)

    def _add_all(self, observations: Iterable[ObservationRecord]) -> None:
        """`add_all` itself.

        The hot path: the per-observer order rule (LC-REGRESSION) and the real-time rule
        (LC-TERMINAL-FLIP) run inline here with the lookups they need in local variables (see
        the module docstring); the rare cases go to `_run`, `_cancel`, `_realtime_terminal`,
        `_content` and `_stream_event`. `_count` and `_newest` live in locals and are written
        back before anything that reads them (`_maybe_finalize`) and at the end.
        """
        tasks = self._tasks
        known = self._known
        terminal = self._terminal
        follows = self._follows
        content_statuses = self._content_statuses
        # The next multiple of FINALIZE_EVERY: a comparison per observation, not a modulo.
        next_finalize = (self._count // FINALIZE_EVERY + 1) * FINALIZE_EVERY
        count = self._count
        newest = self._newest
        # From a file that can be read again, witnesses are kept as positions (`count`), not as
        # records: nearly every record is kept a while (the last one of its observer), and a kept
        # record outlives its block of the reader, to be freed cold, object by object. From a
        # list (or any other iterable) the records themselves.
        source = observations if isinstance(observations, HistoryRecords) else None
        by_position = source is not None and source.positional()
        records: Iterable[CheckedRecord] = observations
        if source is not None and by_position:
            self._sources.append((count, source))
            # Only the fields read here are decoded: witnesses are read again in full.
            records = source.checked()
        kept: _Kept
        first = count + 1
        try:
            for count, obs in enumerate(records, first):
                kept = count if by_position else obs
                recv = obs.recv_ns
                if recv is None or obs.outcome != "ok":
                    self._indeterminate += 1
                    if obs.channel == "cancel":
                        self._unanswered_cancel(obs, kept)
                    continue
                if recv > newest:
                    newest = recv
                extra = obs.extra
                # `in` first: no method call for the records without a probe (nearly all). Not a
                # dict: the lean `extra` of `HistoryRecords.checked`, never a probe.
                if type(extra) is dict and "probe" in extra and extra["probe"] == "foreign":
                    if obs.http != 404:
                        self._find("LC-ISOLATION", f"another key's {obs.channel} of task {obs.task} "
                                   f"answered HTTP {obs.http}, not 404", [kept], obs.task)
                    continue
                conn = obs.conn
                if conn is not None:
                    self._stream_event(obs, kept)
                task_id = obs.task
                if task_id is None:
                    continue
                task = tasks.get(task_id)
                if task is None:
                    task = self._new_task(task_id, count)
                if recv > task.last_recv:
                    task.last_recv = recv
                channel = obs.channel
                if channel in _RUN_OR_CANCEL:  # one test for the polls
                    if channel == "cancel":
                        self._cancel(task, obs, kept)
                    elif obs.http is not None and obs.http < 300:
                        self._run(task, task_id, obs, kept)
                status = obs.status
                kind = obs.kind
                if status is None or (kind is not None and kind in ("heartbeat", "close", "invalid")):
                    if count >= next_finalize:
                        next_finalize += FINALIZE_EVERY
                        self._count, self._newest = count, newest
                        self._maybe_finalize()
                    continue
                if type(status) is not int or status not in known:
                    self._find("LC-UNKNOWN-STATUS", f"{obs.channel} by {obs.observer} showed status "
                               f"{status!r}, which is not an integer code of the lifecycle", [kept], task_id)
                    continue
                # LC-REGRESSION: per observer (or connection), statuses only move forward.
                last = task.last
                who = conn or obs.observer
                before = last.get(who)
                # Most polls repeat the observer's last status: kept by position, nothing to do.
                # A kept record (not by position) is never equal to a status.
                if before != status:
                    last[who] = status if by_position else obs
                    if before is not None:
                        # A known status: only those are kept. The kind is tested for, not
                        # `by_position`: a checker fed from a list, then from a file, holds both.
                        kept_status = type(before) is int
                        previous = before if kept_status else before.status
                        if status != previous and status not in follows[previous]:
                            self._find("LC-REGRESSION", f"{obs.observer} saw task {task_id} go "
                                       f"from {self.lc.label(previous)} to {self.lc.label(status)}, "
                                       "which the lifecycle does not allow",
                                       [_LastOf(task_id, who, task.first_seen, count - 1)
                                        if kept_status else before, kept], task_id)
                elif not by_position:
                    last[who] = obs
                # LC-TERMINAL-FLIP: once a terminal status was received, later requests see it.
                if status in terminal:
                    self._realtime_terminal(task, task_id, obs, kept, status, recv)
                else:
                    send = obs.send_ns
                    if send > task.latest_open_send or task.latest_open is None:
                        task.latest_open = kept
                        task.latest_open_send = send
                        if task.terminal_obs is not None:
                            self._stale_check(task, task_id)
                # Output, error and cancel facts; then the warm-setup rule (LC-SETUP-WARM).
                if status in content_statuses:
                    self._content(task, task_id, obs, kept, status)
                if task.warm_expected and task.setup_seen is None:
                    setup = self._setup
                    if status in setup or not setup.isdisjoint(obs.trail or ()):
                        task.setup_seen = kept
                        task.setup_status = status
                if count >= next_finalize:
                    next_finalize += FINALIZE_EVERY
                    self._count, self._newest = count, newest
                    self._maybe_finalize()
        finally:
            self._count, self._newest = count, newest

    def _new_task(self, task_id: str, position: int) -> _Task:
        self._serial += 1
        task = self._tasks[task_id] = _Task(serial=self._serial, first_seen=position)
        self._stats["tasks"] += 1
        return task

    def _unanswered_cancel(self, obs: CheckedRecord, kept: _Kept) -> None:
        """A cancel that timed out may still have reached the server: it counts as sent
        (LC-CANCEL-UNREQUESTED), though never as acknowledged."""
        if obs.task is None or obs.extra.get("probe") == "foreign":
            return
        task = self._tasks.get(obs.task) or self._new_task(obs.task, kept if isinstance(kept, int) else 0)
        self._cancel(task, obs, kept)

    def _run(self, task: _Task, task_id: str, obs: CheckedRecord, kept: _Kept) -> None:
        if task.run is not None:
            self._find("LC-DUPLICATE-ID", f"two accepted runs returned the same task id {task_id}",
                       [task.run, kept], task_id)
            return
        task.run = kept
        task.run_send = obs.send_ns
        deadline = obs.extra.get("deadline_s")
        if isinstance(deadline, int | float):
            task.deadline_ns = obs.send_ns + int(deadline * 1e9)
        task.warm_expected = bool(obs.extra.get("warm_expected"))
        if task.warm_expected:
            self._stats["warm_expected"] += 1
        if type(obs.status) is int and obs.status in self._known and obs.status not in self.lc.initial:
            self._find("LC-INITIAL-STATUS", f"the run answered status {self.lc.label(obs.status)}; "
                       f"a new task starts as one of {self.lc.initial}", [kept], task_id)

    def _cancel(self, task: _Task, obs: CheckedRecord, kept: _Kept) -> None:
        if task.first_cancel_send is None or obs.send_ns < task.first_cancel_send:
            task.first_cancel_send = obs.send_ns
        acked = obs.http is not None and 200 <= obs.http < 300
        # The list, not the frozenset: the status is the server's JSON, perhaps a list or an object.
        if acked and (obs.status is None or obs.status not in self.lc.terminal):
            # The earliest sent, not the first recorded: if any was sent before the end, it was.
            if task.cancel_ack is None or obs.send_ns < task.cancel_ack_send:
                task.cancel_ack = kept
                task.cancel_ack_send = obs.send_ns

    def _realtime_terminal(self, task: _Task, task_id: str, obs: CheckedRecord, kept: _Kept,
                           status: int, recv: int) -> None:
        if task.terminal is not None and status != task.terminal and not task.flipped:
            task.flipped = True
            assert task.terminal_obs is not None
            self._find("LC-TERMINAL-FLIP", f"task {task_id} was seen ending as both "
                       f"{self.lc.label(task.terminal)} and {self.lc.label(status)}",
                       [task.terminal_obs, kept], task_id)
        term = task.terminal_obs
        if term is None or recv < task.terminal_recv:
            if task.terminal is None:
                task.terminal = status
                self._stats["terminal"] += 1
                if task.run is not None:
                    self._to_terminal_ms.append((recv - task.run_send) / 1e6)
            task.terminal_obs = kept
            task.terminal_recv = recv
            if term is None:
                # From now on the task can be finalized, once it has been quiet for the horizon.
                heapq.heappush(self._ended, (task.last_recv, task.serial, task_id, task))
            self._stale_check(task, task_id)

    def _stale_check(self, task: _Task, task_id: str) -> None:
        term, late = task.terminal_obs, task.latest_open
        if term is None or late is None or task.flipped:
            return
        if task.latest_open_send > task.terminal_recv:
            task.flipped = True
            label = self.lc.label

            def message(witness: list[dict[str, Any]]) -> str:
                term, late = witness
                return (f"{late['observer']} sent a request after {term['observer']} had received the "
                        f"terminal status {label(term['status'])} of task {task_id}, and saw "
                        f"{label(late['status'])}")
            self._find("LC-TERMINAL-FLIP", message, [term, late], task_id)

    def _content(self, task: _Task, task_id: str, obs: CheckedRecord, kept: _Kept,
                 status: int) -> None:
        """Output, error and cancel facts (the warm-setup rule is in `add_all`)."""
        if status == self.lc.completed and obs.output is False:
            self._find("LC-COMPLETED-OUTPUT", f"task {task_id} is completed without an output",
                       [kept], task_id)
        if status in self._failed and obs.error is False:
            self._find("LC-FAILED-ERROR", f"task {task_id} is {self.lc.label(status)} without an "
                       "error message", [kept], task_id)
        stranded = self._stranding.get(status)
        if stranded:
            self._find("LC-SDK-UNKNOWN-TERMINAL", f"task {task_id} ended {self.lc.label(status)}, which "
                       f"{' and '.join(stranded)} does not know as terminal: its run() waits forever "
                       "(stream or poll)", [kept], task_id)
        if status in self._cancel_statuses:
            recv = obs.recv_ns or 0
            if task.first_cancel_status is None or recv < task.first_cancel_recv:
                task.first_cancel_status = kept
                task.first_cancel_recv = recv
                task.first_cancel_code = status

    def _stream_event(self, obs: CheckedRecord, kept: _Kept) -> None:
        conn_id, recv = obs.conn, obs.recv_ns
        assert conn_id is not None and recv is not None
        conn = self._conns.get(conn_id)
        if conn is None:
            conn = self._conns[conn_id] = _Conn(obs.task)
            if obs.kind != "update":
                self._find("LC-STREAM-SNAPSHOT-FIRST", f"the first event of {obs.channel} stream "
                           f"{conn_id} was a {obs.kind}, not a snapshot of the task", [kept], obs.task)
        bound = self._bound_ns
        if conn.events and bound is not None and recv - conn.last_recv > bound:
            gap = (recv - conn.last_recv) / 1e9
            self._find("LC-HEARTBEAT-GAP", f"{obs.channel} stream {conn_id} was silent for {gap:.1f} s "
                       f"(bound {self.options.heartbeat_bound_s:g} s)", [kept], obs.task)
        kind = obs.kind
        if not conn.events:
            conn.last_update = recv
        elif conn.terminal is None and recv - conn.last_update > self._quiet_ns:
            self._quiet(conn, conn_id, obs, kept, recv - conn.last_update)
        if kind == "update":
            conn.last_update = recv
        conn.events += 1
        conn.last_recv = recv
        if kind == "close":
            if conn.terminal is None:
                self._find("LC-STREAM-NO-TERMINAL", f"the server closed {obs.channel} stream {conn_id} "
                           f"of task {obs.task} without a terminal update", [kept], obs.task)
            del self._conns[conn_id]
            return
        terminal = kind == "update" and type(obs.status) is int and obs.status in self._terminal
        if conn.end.feed(kind or "", terminal) and len(conn.end.after) == 1:
            assert conn.terminal is not None
            what = "an update" if kind == "update" else "a non-JSON line"
            self._find("LC-STREAM-AFTER-TERMINAL", f"{obs.channel} stream {conn_id} sent {what} "
                       "after its terminal update", [conn.terminal, kept], obs.task)
        if terminal and conn.terminal is None:
            conn.terminal = kept

    def _quiet(self, conn: _Conn, conn_id: str, obs: CheckedRecord, kept: _Kept,
               quiet_ns: int) -> None:
        """A live stream's time since its last update: the contract's bound, the SDK's idle check."""
        options = self.options
        progress, idle = options.progress_bound_s, options.sdk_idle_s
        if progress is not None and quiet_ns > progress * 1e9 and not conn.quiet_found & 1:
            conn.quiet_found |= 1
            self._find("LC-PROGRESS-GAP", f"{obs.channel} stream {conn_id} sent no update for "
                       f"{quiet_ns / 1e9:.1f} s (bound {progress:g} s)", [kept], obs.task)
        if idle is not None and obs.kind == "heartbeat" and quiet_ns > idle * 1e9 \
                and not conn.quiet_found & 2:
            conn.quiet_found |= 2
            self._find("LC-SDK-STREAM-IDLE", f"{obs.channel} stream {conn_id}: a heartbeat came "
                       f"{quiet_ns / 1e9:.1f} s after the last update; the Python SDK drops the "
                       f"connection past {idle:g} s and reconnects (six times, then run() fails)",
                       [kept], obs.task)

    # -- finalizing ------------------------------------------------------------------------

    def _maybe_finalize(self) -> None:
        """Finalize and drop every ended task last seen more than the horizon before the newest
        observation. Only those are popped from the heap (and tasks seen again since they
        ended are pushed back once with their newer time): no scan of the tasks held."""
        tasks = self._tasks
        self._peak_tasks = max(self._peak_tasks, len(tasks))
        self._peak_conns = max(self._peak_conns, len(self._conns))
        cutoff = self._newest - self._horizon_ns
        ended = self._ended
        done: list[tuple[int, str, _Task]] = []
        while ended and ended[0][0] < cutoff:
            _, serial, task_id, task = heapq.heappop(ended)
            if tasks.get(task_id) is not task:
                continue
            if task.last_recv < cutoff:
                done.append((serial, task_id, task))
            else:
                heapq.heappush(ended, (task.last_recv, serial, task_id, task))
        done.sort(key=_first)
        for _, task_id, task in done:
            del tasks[task_id]
            self._finalize(task_id, task)

    def _finalize(self, task_id: str, task: _Task) -> None:
        first = task.first_cancel_status
        if first is not None and (task.first_cancel_send is None
                                  or task.first_cancel_recv < task.first_cancel_send):
            self._find("LC-CANCEL-UNREQUESTED", f"task {task_id} showed "
                       f"{self.lc.label(task.first_cancel_code)} before any cancel was sent", [first],
                       task_id)
        ack = task.cancel_ack
        if ack is not None and task.terminal is not None and task.terminal != self.lc.cancelled:
            term = task.terminal_obs
            assert term is not None
            if task.terminal_recv > task.cancel_ack_send:  # it had not ended before the cancel was sent
                self._find("LC-CANCEL-IGNORED", f"the cancel of task {task_id} was acknowledged but the "
                           f"task ended {self.lc.label(task.terminal)}", [ack, term], task_id)
        if task.warm_expected:
            if task.setup_seen is not None:
                self._find("LC-SETUP-WARM", f"task {task_id} ran with the setup its worker was warm for, "
                           f"but went through {self.lc.label(task.setup_status)}",
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
        self._peak_tasks, self._peak_conns = self.peak_held()
        for task_id, task in self._tasks.items():
            self._finalize(task_id, task)
        self._tasks.clear()
        self._ended.clear()
        self._write_pending()
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


@contextlib.contextmanager
def _rare_collections() -> Iterator[None]:
    """The pass holds the observations of every open task: by default a collection every 700
    allocations moves them to the older generations, and full collections then walk all of
    them again and again (a third of the time with 20k tasks held). The pass makes no
    reference cycles: collecting rarely keeps no garbage longer."""
    threshold = gc.get_threshold()
    gc.set_threshold(max(threshold[0], 100_000), *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return round(values[min(len(values) - 1, int(q * len(values)))], 3)


def check_history(observations: Iterable[ObservationRecord], lifecycle: Lifecycle,
                  options: InvariantOptions | None = None) -> CheckReport:
    """Check a whole history; the observations may come from a streaming reader."""
    checker = Checker(lifecycle, options)
    checker.add_all(observations)
    return checker.finish()
