"""The inlined lifecycle checker and its plain reference find the same (check, task) pairs.

Histories are simulated correct ones (tests/histories.py) with anomalies injected by the
perturbations below. The fast checker reports a check once per task, at most
MAX_FINDINGS_PER_CHECK of each; the reference reports every violating event. So the
comparison is the set of (check, task) pairs, the level at which both promise the same thing.

Where the fast checker may legitimately differ, the generator stays out of the way:
- it drops a task that ended `horizon_s` before the newest observation (checked every
  FINALIZE_EVERY observations): generated histories are far shorter, so nothing is dropped;
- it learns that a run was expected warm when it reads the run: a task's run stays ahead of the
  task's other observations, as in every real history (the id comes from the run's answer).
"""

from __future__ import annotations

import dataclasses
import gzip
import random
import tempfile
from collections.abc import Callable
from pathlib import Path

from hypothesis import event, given, settings
from hypothesis import strategies as st

from harness.checks.lifecycle import CHECKS, Checker, InvariantOptions, check_history
from harness.checks.lifecycle_reference import RULES, reference_check
from harness.contract import load_lifecycle
from harness.history import Observation, StreamKind, compress_history, read_history, read_records
from tests.checks.test_lifecycle import ANOMALIES, anomaly_options, base
from tests.histories import MS, simulate

LC = load_lifecycle()
S = 1_000_000_000
History = list[Observation]
Perturbation = Callable[[History, random.Random], History]

# Statuses a buggy server might send: known codes, unknown ones, and the wrong types.
ODD_STATUSES: list[object] = [*LC.statuses, 42, -1, 10.0, 7.5, "7", "completed", True, None, [7], {"code": 7}]


def pairs_fast(history: History, options: InvariantOptions) -> set[tuple[str, str | None]]:
    report = check_history(history, LC, options)
    # Generated histories are far below MAX_FINDINGS_PER_CHECK distinct tasks; a suppressed
    # finding would hide a pair, so the comparison would not be sound.
    assert not report.suppressed
    return {(f.check, f.task_id) for f in report.findings}


def pairs_reference(history: History, options: InvariantOptions) -> set[tuple[str, str | None]]:
    return {(v.check, v.task) for v in reference_check(history, LC, options)}


# -- perturbations: each returns a new history (an unchanged one when it finds no target) ----------


def _pick(history: History, rng: random.Random, keep: Callable[[Observation], bool]) -> int | None:
    indices = [i for i, o in enumerate(history) if keep(o)]
    return rng.choice(indices) if indices else None


def _replace(history: History, index: int | None, **changes: object) -> History:
    if index is None:
        return history
    out = list(history)
    out[index] = dataclasses.replace(out[index], **changes)  # type: ignore[arg-type]
    return out


def _insert(history: History, obs: Observation) -> History:
    """Insert in receive order, but after the task's run: nobody can ask about a task before
    its run answered with the id (the fast checker relies on it for LC-SETUP-WARM)."""
    at = 0
    for i, o in enumerate(history):
        late = o.recv_ns is not None and obs.recv_ns is not None and o.recv_ns <= obs.recv_ns
        if late or (o.channel == "run" and o.task == obs.task):
            at = i + 1
    return [*history[:at], obs, *history[at:]]


def _shows(o: Observation) -> bool:
    return o.task is not None and o.status is not None and o.kind not in ("heartbeat", "close")


def _tasks(history: History) -> list[str]:
    return sorted({o.task for o in history if o.task is not None})


def _ends(history: History, task: str) -> list[Observation]:
    return [o for o in history if o.task == task and o.status in LC.terminal and o.recv_ns is not None]


def set_status(history: History, rng: random.Random) -> History:
    """Any status, odd types included, in place of one shown: regressions, flips, unknowns."""
    channel = rng.choice(["cancel", "run", None, None])  # the answers with rules of their own, often
    index = _pick(history, rng, lambda o: _shows(o) and channel in (None, o.channel))
    return _replace(history, index, status=rng.choice(ODD_STATUSES))


def drop_content(history: History, rng: random.Random) -> History:
    """A Completed without its output, or a Failed/Rejected without its error."""
    index = _pick(history, rng, lambda o: o.status in (LC.completed, LC.failed, LC.rejected))
    if index is None:
        return history
    return _replace(history, index, output=False) if history[index].status == LC.completed \
        else _replace(history, index, error=False)


def drop(history: History, rng: random.Random) -> History:
    """An observation that never made it into the file (a run, a snapshot, a close, a cancel)."""
    index = rng.randrange(len(history)) if history else None
    return history if index is None else history[:index] + history[index + 1:]


def unanswered(history: History, rng: random.Random) -> History:
    """A request that timed out, mostly a cancel (which may still have reached the server)."""
    cancel = rng.random() < 0.6
    index = _pick(history, rng, lambda o: not cancel or o.channel == "cancel")
    return _replace(history, index, recv_ns=None, outcome=rng.choice(["timeout", "error"]), http=None,
                    status=None, output=None, error=None, kind=None)


def stale_read(history: History, rng: random.Random) -> History:
    """A request sent after some client received the terminal status, still seeing it open."""
    tasks = [t for t in _tasks(history) if _ends(history, t)]
    if not tasks:
        return history
    task = rng.choice(tasks)
    end = min(o.recv_ns or 0 for o in _ends(history, task))
    send = end + rng.choice([-2, 1, 3]) * MS
    return _insert(history, Observation(task, f"late{rng.randrange(3)}", "get", send, send + 2 * MS, 0.0,
                                        http=200, status=rng.choice([2, 7, 9]), output=False))


def duplicate_run(history: History, rng: random.Random) -> History:
    """A second accepted run answered with a task id already given out."""
    index = _pick(history, rng, lambda o: o.channel == "run" and o.recv_ns is not None)
    if index is None:
        return history
    run = history[index]
    assert run.recv_ns is not None
    send = run.recv_ns + rng.randint(0, 30) * MS
    again = dataclasses.replace(run, observer="runner2", send_ns=send, recv_ns=send + MS,
                                status=rng.choice([1, 1, 7, 13]))
    return _insert(history, again)


def foreign_probe(history: History, rng: random.Random) -> History:
    """Another key asks about a task: 404, or a leak."""
    tasks = _tasks(history)
    if not tasks:
        return history
    send = rng.randint(2, 60) * MS
    return _insert(history, Observation(rng.choice(tasks), "foreign", rng.choice(["get", "cancel", "ndjson"]),
                                        send, send + MS, 0.0, http=rng.choice([404, 404, 200, 403]),
                                        status=rng.choice([None, 7]), extra={"probe": "foreign"}))


def run_extra(history: History, rng: random.Random) -> History:
    """A run expected warm (its task's trail perhaps showing setup phases), or with a deadline
    that may pass before the end is seen."""
    index = _pick(history, rng, lambda o: o.channel == "run")
    if index is None:
        return history
    extra = dict(history[index].extra)
    if rng.random() < 0.5:
        extra["deadline_s"] = rng.choice([0.001, 0.01, 0.03, 10.0, None])
        return _replace(history, index, extra=extra)
    extra["warm_expected"] = True
    out = _replace(history, index, extra=extra)
    task = history[index].task
    later = _pick(out, rng, lambda o: o.task == task and _shows(o) and o.channel != "run")
    return _replace(out, later, trail=[1, 2, 3, rng.choice([4, 6, 7]), 7])


def lose(history: History, rng: random.Random) -> History:
    """A task whose terminal status nobody sees, with a deadline short enough to pass."""
    runs = [i for i, o in enumerate(history) if o.channel == "run" and o.task is not None]
    if not runs:
        return history
    index = rng.choice(runs)
    task = history[index].task
    out = _replace(history, index, extra={**history[index].extra, "deadline_s": rng.choice([0.005, 0.02])})
    return [o for o in out if not (o.task == task and o.status in LC.terminal)]


def add_cancel(history: History, rng: random.Random) -> History:
    """One or two cancels at random moments: acknowledged or refused, showing an open or ended
    task (or junk); a slow answer now and then, so cancels are recorded out of send order."""
    tasks = _tasks(history)
    if not tasks:
        return history
    task = rng.choice(tasks)
    send = rng.randint(0, 80) * MS
    # The second, if any, is sent later and overtakes the first.
    for latency in [40 * MS, MS][:rng.randint(1, 2)] if rng.random() < 0.5 else [rng.randint(1, 5) * MS]:
        http = rng.choice([200, 202, 409])
        status = rng.choice([None, None, 7, 8, 12, 10, [7], "7"]) if http < 300 else None
        history = _insert(history, Observation(task, f"canceller{rng.randint(2, 3)}", "cancel", send,
                                               send + latency, 0.0, http=http, status=status))
        send += rng.randint(1, 30) * MS
    return history


def stall(history: History, rng: random.Random) -> History:
    """Everything from some moment on happens seconds later: stream gaps, passed deadlines."""
    times = sorted({o.recv_ns for o in history if o.recv_ns is not None})
    if not times:
        return history
    cut, delay = rng.choice(times), rng.choice([2, 16, 40]) * S
    return [dataclasses.replace(o, send_ns=o.send_ns + delay if o.send_ns >= cut else o.send_ns,
                                recv_ns=o.recv_ns + delay if o.recv_ns is not None and o.recv_ns >= cut
                                else o.recv_ns) for o in history]


def swap(history: History, rng: random.Random) -> History:
    """Two neighbouring lines in the other order (never a run: it stays first for its task)."""
    pairs = [i for i in range(len(history) - 1)
             if history[i].channel != "run" and history[i + 1].channel != "run"]
    if not pairs:
        return history
    i = rng.choice(pairs)
    return [*history[:i], history[i + 1], history[i], *history[i + 2:]]


def repeat(history: History, rng: random.Random) -> History:
    """A line written twice: a second terminal update, a second close, a second snapshot."""
    index = _pick(history, rng, lambda o: o.channel != "run")
    if index is None:
        return history
    return [*history[:index + 1], history[index], *history[index + 1:]]


def stream_extra(history: History, rng: random.Random) -> History:
    """One more event on a stream connection (perhaps after its terminal update or its close)."""
    index = _pick(history, rng, lambda o: o.conn is not None and o.recv_ns is not None)
    if index is None:
        return history
    at = history[index]
    assert at.recv_ns is not None
    kinds: list[StreamKind | None] = ["update", "update", "heartbeat", "invalid", "close", None]
    kind = rng.choice(kinds)
    # A status on a heartbeat, close or junk line is not the task's: both checkers must ignore it.
    event = dataclasses.replace(at, recv_ns=at.recv_ns + rng.randint(0, 3) * MS, kind=kind,
                                status=rng.choice([None, 2, 7, 10, 11, "7"]), output=True, error=True)
    return [*history[:index + 1], event, *history[index + 1:]]


def forget_task(history: History, rng: random.Random) -> History:
    """An observation without a task id (as the rate-limit suite records its requests)."""
    return _replace(history, _pick(history, rng, lambda o: o.channel != "run"), task=None)


PERTURBATIONS: dict[str, Perturbation] = {f.__name__: f for f in (
    set_status, drop_content, drop, unanswered, stale_read, duplicate_run, foreign_probe, run_extra,
    lose, add_cancel, stall, swap, repeat, stream_extra, forget_task)}
# Bounds against the simulator's millisecond gaps: 4 and 15 ms fire often, 15 s only after a stall.
BOUNDS = [None, 0.004, 0.015, 15.0]


def bounded(bound: float | None) -> InvariantOptions:
    """One bound for the heartbeat gap and the progress gap; the SDK's idle check half again."""
    return InvariantOptions(heartbeat_bound_s=bound, progress_bound_s=bound,
                            sdk_idle_s=None if bound is None else bound * 1.5)


def perturbed(seed: int, size: tuple[int, int, int], changes: list[tuple[str, int]]) -> History:
    history = simulate(LC, seed, *size)
    for name, change_seed in changes:
        history = PERTURBATIONS[name](history, random.Random(change_seed))
    return history


# -- the tests --------------------------------------------------------------------------------------


def test_every_check_has_a_reference_rule() -> None:
    assert RULES.keys() == CHECKS.keys()


def test_reference_finds_exactly_each_hand_made_anomaly() -> None:
    for check, extra in ANOMALIES.items():
        history = sorted(base() + extra, key=lambda o: o.recv_ns or 0)
        found = {v.check for v in reference_check(history, LC, anomaly_options(check))}
        assert found == {check}


@settings(max_examples=400, deadline=None)
@given(seed=st.integers(0, 2**32), size=st.tuples(st.integers(1, 5), st.integers(1, 4), st.integers(0, 4)),
       changes=st.lists(st.tuples(st.sampled_from(sorted(PERTURBATIONS)), st.integers(0, 2**32)), max_size=4),
       bound=st.sampled_from(BOUNDS))
def test_fast_checker_agrees_with_reference(seed: int, size: tuple[int, int, int],
                                           changes: list[tuple[str, int]], bound: float | None) -> None:
    history = perturbed(seed, size, changes)
    options = bounded(bound)
    fast, reference = pairs_fast(history, options), pairs_reference(history, options)
    assert fast == reference, {"only fast": fast - reference, "only reference": reference - fast}
    for check in sorted({check for check, _ in fast}) or ["no finding"]:
        event(check)  # --hypothesis-show-statistics: how often each check was compared firing


def test_generator_reaches_every_check() -> None:
    """The perturbations are strong enough to make every check fire (else agreement is cheap)."""
    rng = random.Random(7)
    seen: set[str] = set()
    names = sorted(PERTURBATIONS)
    for _ in range(150):
        changes = [(rng.choice(names), rng.randrange(2**32)) for _ in range(rng.randint(1, 4))]
        history = perturbed(rng.randrange(2**32), (rng.randint(1, 5), rng.randint(1, 4), rng.randint(0, 4)),
                            changes)
        seen |= {v.check for v in reference_check(history, LC, bounded(rng.choice(BOUNDS)))}
    assert seen == set(CHECKS)


# -- the disagreements the comparison found (bugs of the fast checker, fixed), pinned down ----------

RUN = Observation("t", "runner", "run", 0, MS, 0.0, http=200, status=1, extra={"deadline_s": 10.0})


def agreed(history: History) -> set[tuple[str, str | None]]:
    options = InvariantOptions()
    fast = pairs_fast(history, options)
    assert fast == pairs_reference(history, options)
    return fast


def test_cancel_answered_with_a_list_as_status() -> None:
    # The fast checker tested the status against a frozenset: TypeError, unhashable type.
    history = [RUN, Observation("t", "c", "cancel", 2 * MS, 3 * MS, 0.0, http=200, status=[7]),
               Observation("t", "o", "get", 4 * MS, 5 * MS, 0.0, http=200, status=10, output=True)]
    assert agreed(history) == {("LC-UNKNOWN-STATUS", "t"), ("LC-CANCEL-IGNORED", "t")}


def test_cancel_that_timed_out_counts_as_sent() -> None:
    # It was dropped with the other unanswered requests: LC-CANCEL-UNREQUESTED, wrongly.
    history = [RUN, Observation("t", "c", "cancel", 2 * MS, None, 0.0, outcome="timeout"),
               Observation("t", "o", "get", 4 * MS, 5 * MS, 0.0, http=200, status=12)]
    assert agreed(history) == set()


def test_the_earliest_sent_acknowledged_cancel_is_judged() -> None:
    # The first recorded one was judged: sent after the end, it hid one sent while the task ran.
    history = [RUN, Observation("t", "o", "get", 2 * MS, 3 * MS, 0.0, http=200, status=7),
               Observation("t", "o", "get", 11 * MS, 12 * MS, 0.0, http=200, status=10, output=True),
               Observation("t", "c1", "cancel", 14 * MS, 15 * MS, 0.0, http=202),
               Observation("t", "c2", "cancel", 5 * MS, 20 * MS, 0.0, http=202, status=7)]
    assert agreed(history) == {("LC-CANCEL-IGNORED", "t")}


# -- the decoded records of read_records are checked exactly as Observations ------------------------


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32), size=st.tuples(st.integers(1, 5), st.integers(1, 4), st.integers(0, 4)),
       changes=st.lists(st.tuples(st.sampled_from(sorted(PERTURBATIONS)), st.integers(0, 2**32)),
                        min_size=1, max_size=4),
       bound=st.sampled_from(BOUNDS))
def test_records_give_the_same_report_as_observations(seed: int, size: tuple[int, int, int],
                                                      changes: list[tuple[str, int]],
                                                      bound: float | None) -> None:
    """Findings (messages and witnesses too) and metrics, from the file read either way: a list
    of records (witnesses kept as records), or streamed from the file, plain or compressed
    (witnesses kept as positions and read again at the end)."""
    history = perturbed(seed, size, changes)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "observations.jsonl"
        path.write_text("".join(o.to_json() + "\n" for o in history))
        compressed = compress_history(Path(folder))
        assert compressed is not None
        plain = Path(folder) / "plain.jsonl"
        plain.write_bytes(gzip.decompress(compressed.read_bytes()))
        records = list(read_records(plain))
        assert any(type(r) is not Observation for r in records)  # the fast decoder's own records
        by_records = check_history(records, LC, bounded(bound))
        by_observations = check_history(read_history(plain), LC, bounded(bound))
        streamed = [check_history(read_records(file), LC, bounded(bound)) for file in (plain, compressed)]
    assert by_records.findings == by_observations.findings
    assert by_records.metrics == by_observations.metrics
    for report in streamed:
        assert report.findings == by_observations.findings
        assert report.metrics == by_observations.metrics


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32), size=st.tuples(st.integers(1, 5), st.integers(1, 4), st.integers(0, 4)),
       changes=st.lists(st.tuples(st.sampled_from(sorted(PERTURBATIONS)), st.integers(0, 2**32)),
                        min_size=1, max_size=4),
       cut=st.floats(0, 1), file_first=st.booleans())
def test_a_checker_fed_from_a_list_and_from_a_file_finds_the_same(
        seed: int, size: tuple[int, int, int], changes: list[tuple[str, int]], cut: float,
        file_first: bool) -> None:
    """Part of the history from a list (witnesses kept as records), the rest streamed from a file
    (kept by position), in either order: the report of the whole list."""
    history = perturbed(seed, size, changes)
    at = int(len(history) * cut)
    head, tail = history[:at], history[at:]
    checker = Checker(LC, bounded(15.0))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "observations.jsonl"
        path.write_text("".join(o.to_json() + "\n" for o in (head if file_first else tail)))
        for part in ((read_records(path), tail) if file_first else (head, read_records(path))):
            checker.add_all(part)
        report = checker.finish()
    whole = check_history(history, LC, bounded(15.0))
    assert report.findings == whole.findings
    assert report.metrics == whole.metrics
