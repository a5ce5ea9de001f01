"""Every LC- rule written plainly: the whole history at once, lists and loops, one function per rule.

The reference for `harness.checks.lifecycle`, which inlines the same rules into one streaming
pass for speed; tests/checks/test_lifecycle_reference.py checks that both find the same
(check, task) pairs on random histories. Nothing here is tuned (some rules are quadratic per
task) and every violating event is reported, not only the first per task.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import pairwise

from harness.checks.lifecycle import CHECKS, InvariantOptions
from harness.contract import Lifecycle
from harness.history import Observation

# Stream events that carry no task status, whatever their `status` field says.
NOT_A_STATUS = ("heartbeat", "close", "invalid")


@dataclass(frozen=True)
class Violation:
    """One event that breaks one rule, with the observations that show it."""

    check: str
    task: str | None
    witness: tuple[Observation, ...]


History = list[Observation]
Rule = Callable[[History, Lifecycle, InvariantOptions], Iterator[Violation]]


# -- what the rules read ---------------------------------------------------------------------


def answered(history: History) -> History:
    """Observations with an answer: a timeout or a broken connection proves nothing."""
    return [o for o in history if o.recv_ns is not None and o.outcome == "ok"]


def is_foreign(obs: Observation) -> bool:
    return obs.extra.get("probe") == "foreign"


def own(history: History) -> History:
    """Answered observations of the tasks' own key, in file order."""
    return [o for o in answered(history) if not is_foreign(o)]


def showing_status(history: History) -> History:
    """Own observations that show a task's status (of any type)."""
    return [o for o in own(history)
            if o.task is not None and o.status is not None and o.kind not in NOT_A_STATUS]


def is_known(status: object, lc: Lifecycle) -> bool:
    # `type is int`: a bool or a float 10.0 is not a status code, though both compare equal to one.
    return type(status) is int and status in lc.statuses


def known(history: History, lc: Lifecycle) -> History:
    return [o for o in showing_status(history) if is_known(o.status, lc)]


def is_terminal(obs: Observation, lc: Lifecycle) -> bool:
    return is_known(obs.status, lc) and obs.status in lc.terminal


def by_task(observations: History) -> dict[str, History]:
    groups: dict[str, History] = {}
    for obs in observations:
        if obs.task is not None:
            groups.setdefault(obs.task, []).append(obs)
    return groups


def accepted_runs(history: History) -> dict[str, History]:
    """Per task id, the runs answered 2xx that returned it, in file order."""
    return by_task([o for o in own(history) if o.channel == "run" and o.http is not None and o.http < 300])


def first_runs(history: History) -> dict[str, Observation]:
    """Per task, the run that created it (later ones are duplicates)."""
    return {task: runs[0] for task, runs in accepted_runs(history).items()}


def streams(history: History) -> list[History]:
    """Each stream connection's events in file order; a close ends it (a reused id starts anew)."""
    open_: dict[str, History] = {}
    done: list[History] = []
    for obs in own(history):
        if obs.conn is None:
            continue
        events = open_.setdefault(obs.conn, [])
        events.append(obs)
        if obs.kind == "close":
            done.append(open_.pop(obs.conn))
    return done + list(open_.values())


def is_terminal_update(obs: Observation, lc: Lifecycle) -> bool:
    return obs.kind == "update" and is_terminal(obs, lc)


# -- the rules ---------------------------------------------------------------------------------


def unknown_status(history: History, lc: Lifecycle, options: InvariantOptions) -> Iterator[Violation]:
    """LC-UNKNOWN-STATUS: every status shown is an integer code of the lifecycle."""
    for obs in showing_status(history):
        if not is_known(obs.status, lc):
            yield Violation("LC-UNKNOWN-STATUS", obs.task, (obs,))


def initial_status(history: History, lc: Lifecycle, options: InvariantOptions) -> Iterator[Violation]:
    """LC-INITIAL-STATUS: the run that created a task answered an initial status.

    Only the first run of an id: a later one is LC-DUPLICATE-ID, and what it shows is the
    status of a task that already existed.
    """
    for task, run in first_runs(history).items():
        if is_known(run.status, lc) and run.status not in lc.initial:
            yield Violation("LC-INITIAL-STATUS", task, (run,))


def regression(history: History, lc: Lifecycle, options: InvariantOptions) -> Iterator[Violation]:
    """LC-REGRESSION: per observer (or stream connection), consecutive statuses may only move on."""
    for task, observations in by_task(known(history, lc)).items():
        seen_by: dict[str, History] = {}
        for obs in observations:
            seen_by.setdefault(obs.conn or obs.observer, []).append(obs)
        for seen in seen_by.values():
            for before, after in pairwise(seen):
                if not lc.may_follow(before.status, after.status):
                    yield Violation("LC-REGRESSION", task, (before, after))


def terminal_flip(history: History, lc: Lifecycle, options: InvariantOptions) -> Iterator[Violation]:
    """LC-TERMINAL-FLIP: a task ends one way, and a request sent after any client received the
    terminal status sees it (not an open status)."""
    for task, observations in by_task(known(history, lc)).items():
        ends = [o for o in observations if is_terminal(o, lc)]
        still_open = [o for o in observations if not is_terminal(o, lc)]
        for a in ends:
            for b in ends:
                if a.status != b.status:
                    yield Violation("LC-TERMINAL-FLIP", task, (a, b))
            for late in still_open:
                assert a.recv_ns is not None
                if late.send_ns > a.recv_ns:
                    yield Violation("LC-TERMINAL-FLIP", task, (a, late))


def stream_snapshot_first(history: History, lc: Lifecycle,
                          options: InvariantOptions) -> Iterator[Violation]:
    """LC-STREAM-SNAPSHOT-FIRST: a stream's first event is an update (the snapshot)."""
    for events in streams(history):
        if events[0].kind != "update":
            yield Violation("LC-STREAM-SNAPSHOT-FIRST", events[0].task, (events[0],))


def stream_after_terminal(history: History, lc: Lifecycle,
                          options: InvariantOptions) -> Iterator[Violation]:
    """LC-STREAM-AFTER-TERMINAL: after a stream's terminal update come only heartbeats and the close."""
    for events in streams(history):
        ends = [i for i, o in enumerate(events) if is_terminal_update(o, lc)]
        if not ends:
            continue
        # One finding per stream, at the first offending event (as the fast checker reports it:
        # the events after it may even have lost their task id).
        after = next((obs for obs in events[ends[0] + 1:] if obs.kind in ("update", "invalid")), None)
        if after is not None:
            yield Violation("LC-STREAM-AFTER-TERMINAL", after.task, (events[ends[0]], after))


def stream_no_terminal(history: History, lc: Lifecycle, options: InvariantOptions) -> Iterator[Violation]:
    """LC-STREAM-NO-TERMINAL: a stream the server closed had sent the terminal update."""
    for events in streams(history):
        close = events[-1]
        if close.kind == "close" and not any(is_terminal_update(o, lc) for o in events):
            yield Violation("LC-STREAM-NO-TERMINAL", close.task, (close,))


def heartbeat_gap(history: History, lc: Lifecycle, options: InvariantOptions) -> Iterator[Violation]:
    """LC-HEARTBEAT-GAP: between two events of a stream, no more than the heartbeat bound."""
    if options.heartbeat_bound_s is None:
        return
    for events in streams(history):
        for before, after in pairwise(events):
            assert before.recv_ns is not None and after.recv_ns is not None
            if after.recv_ns - before.recv_ns > options.heartbeat_bound_s * 1e9:
                yield Violation("LC-HEARTBEAT-GAP", after.task, (before, after))


def _quiet(history: History, lc: Lifecycle, bound_s: float | None,
           heartbeats_only: bool) -> Iterator[tuple[Observation, Observation]]:
    """The first event of each stream, up to its terminal update, more than `bound_s` after the
    stream's last update (or its first event); with `heartbeats_only`, only heartbeats count."""
    if bound_s is None:
        return
    for events in streams(history):
        last = events[0]
        for before, event in pairwise(events):
            if is_terminal_update(before, lc):
                break
            if before.kind == "update":
                last = before
            assert event.recv_ns is not None and last.recv_ns is not None
            if (not heartbeats_only or event.kind == "heartbeat") \
                    and event.recv_ns - last.recv_ns > bound_s * 1e9:
                yield last, event
                break


def progress_gap(history: History, lc: Lifecycle, options: InvariantOptions) -> Iterator[Violation]:
    """LC-PROGRESS-GAP: a live stream sends an update at least every `progress_bound_s`."""
    for last, event in _quiet(history, lc, options.progress_bound_s, False):
        yield Violation("LC-PROGRESS-GAP", event.task, (last, event))


def sdk_stream_idle(history: History, lc: Lifecycle, options: InvariantOptions) -> Iterator[Violation]:
    """LC-SDK-STREAM-IDLE: no heartbeat more than `sdk_idle_s` after a live stream's last update."""
    for last, event in _quiet(history, lc, options.sdk_idle_s, True):
        yield Violation("LC-SDK-STREAM-IDLE", event.task, (last, event))


def completed_output(history: History, lc: Lifecycle, options: InvariantOptions) -> Iterator[Violation]:
    """LC-COMPLETED-OUTPUT: whoever sees a task Completed sees an output."""
    for obs in known(history, lc):
        if obs.status == lc.completed and obs.output is False:
            yield Violation("LC-COMPLETED-OUTPUT", obs.task, (obs,))


def failed_error(history: History, lc: Lifecycle, options: InvariantOptions) -> Iterator[Violation]:
    """LC-FAILED-ERROR: whoever sees a task Failed or Rejected sees an error."""
    for obs in known(history, lc):
        if obs.status in (lc.failed, lc.rejected) and obs.error is False:
            yield Violation("LC-FAILED-ERROR", obs.task, (obs,))


def sdk_unknown_terminal(history: History, lc: Lifecycle,
                         options: InvariantOptions) -> Iterator[Violation]:
    """LC-SDK-UNKNOWN-TERMINAL: whoever sees a task end at a status an SDK does not know (a warning)."""
    for obs in known(history, lc):
        if lc.clients_waiting_on(obs.status):
            yield Violation("LC-SDK-UNKNOWN-TERMINAL", obs.task, (obs,))


def cancel_unrequested(history: History, lc: Lifecycle,
                       options: InvariantOptions) -> Iterator[Violation]:
    """LC-CANCEL-UNREQUESTED: Cancelling or Cancelled is received only after a cancel was sent.

    Any cancel of the task's own key counts as sent, answered or not: one that timed out may
    still have reached the server.
    """
    sent = by_task([o for o in history if o.channel == "cancel" and not is_foreign(o)])
    for task, observations in by_task(known(history, lc)).items():
        first_sent = min((o.send_ns for o in sent.get(task, [])), default=None)
        for obs in observations:
            if obs.status not in (lc.cancelling, lc.cancelled):
                continue
            assert obs.recv_ns is not None
            if first_sent is None or obs.recv_ns < first_sent:
                yield Violation("LC-CANCEL-UNREQUESTED", task, (obs,))


def cancel_ignored(history: History, lc: Lifecycle, options: InvariantOptions) -> Iterator[Violation]:
    """LC-CANCEL-IGNORED: a cancel acknowledged (2xx, the task not shown ended) and sent before any
    client received a terminal status leads to Cancelled.

    The task's end is the terminal status the history records first; if it records two, that
    is LC-TERMINAL-FLIP.
    """
    acks = by_task([o for o in own(history) if o.channel == "cancel" and o.http is not None
                    and 200 <= o.http < 300 and (o.status is None or o.status not in lc.terminal)])
    for task, observations in by_task(known(history, lc)).items():
        ends = [o for o in observations if is_terminal(o, lc)]
        if not ends or ends[0].status == lc.cancelled:
            continue
        first_end = min(ends, key=lambda o: o.recv_ns or 0)
        assert first_end.recv_ns is not None
        for ack in acks.get(task, []):
            if ack.send_ns < first_end.recv_ns:
                yield Violation("LC-CANCEL-IGNORED", task, (ack, first_end))


def lost_task(history: History, lc: Lifecycle, options: InvariantOptions) -> Iterator[Violation]:
    """LC-LOST-TASK: a task whose history goes past its run's deadline shows a terminal status."""
    ended = {o.task for o in known(history, lc) if is_terminal(o, lc)}
    mine = by_task(own(history))
    for task, run in first_runs(history).items():
        deadline_s = run.extra.get("deadline_s")
        if task in ended or not isinstance(deadline_s, int | float):
            continue
        last_seen = max(o.recv_ns or 0 for o in mine[task])
        if last_seen >= run.send_ns + int(deadline_s * 1e9):
            yield Violation("LC-LOST-TASK", task, (run,))


def duplicate_id(history: History, lc: Lifecycle, options: InvariantOptions) -> Iterator[Violation]:
    """LC-DUPLICATE-ID: no two accepted runs return the same task id."""
    for task, runs in accepted_runs(history).items():
        for again in runs[1:]:
            yield Violation("LC-DUPLICATE-ID", task, (runs[0], again))


def isolation(history: History, lc: Lifecycle, options: InvariantOptions) -> Iterator[Violation]:
    """LC-ISOLATION: another key's request about a task answers 404."""
    for obs in answered(history):
        if is_foreign(obs) and obs.http != 404:
            yield Violation("LC-ISOLATION", obs.task, (obs,))


def setup_warm(history: History, lc: Lifecycle, options: InvariantOptions) -> Iterator[Violation]:
    """LC-SETUP-WARM: a run expected warm never shows a setup phase, as a status or in its trail."""
    shown = by_task(known(history, lc))
    for task, run in first_runs(history).items():
        if not run.extra.get("warm_expected"):
            continue
        for obs in shown.get(task, []):
            if obs.status in lc.setup_phases or any(s in lc.setup_phases for s in obs.trail or ()):
                yield Violation("LC-SETUP-WARM", task, (obs,))


RULES: dict[str, Rule] = {
    "LC-UNKNOWN-STATUS": unknown_status,
    "LC-INITIAL-STATUS": initial_status,
    "LC-REGRESSION": regression,
    "LC-TERMINAL-FLIP": terminal_flip,
    "LC-STREAM-SNAPSHOT-FIRST": stream_snapshot_first,
    "LC-STREAM-AFTER-TERMINAL": stream_after_terminal,
    "LC-STREAM-NO-TERMINAL": stream_no_terminal,
    "LC-HEARTBEAT-GAP": heartbeat_gap,
    "LC-PROGRESS-GAP": progress_gap,
    "LC-SDK-STREAM-IDLE": sdk_stream_idle,
    "LC-COMPLETED-OUTPUT": completed_output,
    "LC-FAILED-ERROR": failed_error,
    "LC-CANCEL-UNREQUESTED": cancel_unrequested,
    "LC-CANCEL-IGNORED": cancel_ignored,
    "LC-LOST-TASK": lost_task,
    "LC-DUPLICATE-ID": duplicate_id,
    "LC-ISOLATION": isolation,
    "LC-SETUP-WARM": setup_warm,
    "LC-SDK-UNKNOWN-TERMINAL": sdk_unknown_terminal,
}
assert RULES.keys() == CHECKS.keys(), "every LC- check has its reference rule"


def reference_check(history: History, lc: Lifecycle,
                    options: InvariantOptions | None = None) -> list[Violation]:
    """Every violation of every rule, rule by rule."""
    options = options or InvariantOptions()
    return [v for rule in RULES.values() for v in rule(history, lc, options)]
