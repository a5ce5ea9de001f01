"""Load suite: units (thresholds, HDR, pacing, merge, limit analysis) and runs against the server.

The runs use short phases and a 2 s rate window; the load processes are real (Locust in child
processes), so every test here also proves the master/worker plumbing and the history merge.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.checks.thresholds import (
    MetricsView,
    ThresholdError,
    evaluate,
    parse_threshold,
    thresholds_from_value,
)
from harness.contract import load_lifecycle, load_limits
from harness.findings import SuiteResult
from harness.history import Observation, read_history
from harness.history.merge import merge_histories
from harness.net.reference import ReferenceServer, fresh_keys, reference_server
from harness.settings import ConfigError, load_settings
from harness.suites.load.analysis import Analysis, Phase, check_limits
from harness.suites.load.config import LoadConfig
from harness.suites.load.hdr import HdrSet, new_histogram, summarize
from harness.suites.load.metrics import PhaseMetrics
from harness.suites.load.pacing import BudgetPacer, Share, SlotSchedule, TaskBudget
from harness.suites.load.plan_auth import TOKEN_ENV
from harness.suites.load.run import LoadOptions, run_load
from harness.suites.load.scenarios import phase_order
from harness.units import parse_duration, parse_rate

WINDOW = 2.0
FLOWS = ["run_wait", "fire_and_forget_poll", "stream_sse", "upload", "mixed"]


# -- thresholds ------------------------------------------------------------------------------

def test_threshold_grammar() -> None:
    t = parse_threshold("get_task.p95<200ms")
    assert (t.metric, t.stat, t.op, t.value, t.kind) == ("get_task", "p95", "<", 200.0, "latency")
    assert parse_threshold("get_task.p(99) <= 1.5s").value == 1500.0
    assert parse_threshold("ndjson.ttfe.p99.9<250").stat == "p999"
    assert parse_threshold("errors<0.1%").value == pytest.approx(0.001)
    assert parse_threshold("errors<0.001").value == pytest.approx(0.001)
    rps = parse_threshold("run.rps>=1.5")
    assert (rps.kind, rps.op, rps.value) == ("count", ">=", 1.5)
    scoped = parse_threshold("mixed:status.max<1s")
    assert (scoped.scenario, scoped.metric, scoped.value) == ("mixed", "status", 1000.0)
    assert parse_threshold("get_task.errors<1%").kind == "rate"
    for bad in ("get_task<200ms", "nope.p95<1", "get_task.p97<1", "errors<5ms", "get_task.p95<1%",
                "task.queue.errors<1%", "get_task.p95 ~ 3"):
        with pytest.raises(ThresholdError):
            parse_threshold(bad)


def test_threshold_evaluation() -> None:
    view = MetricsView(duration_s=10.0, latency={"get_task": {"count": 100, "p95": 120.0, "max": 300.0}},
                       requests={"get_task": 100, "run": 20}, errors={"get_task": 1},
                       rate_limited={"run": 2}, dropped_iterations=3)
    texts = ["get_task.p95<200ms", "get_task.max<200ms", "errors<0.1%", "errors<1%", "run.rps>=1.5",
             "run.rps>=3", "rate_limited<=2%", "dropped_iterations==0", "status.p95<1s",
             "mixed:get_task.p95<1s"]
    results = evaluate([parse_threshold(t) for t in texts], view, {})
    outcome = {r.threshold.text: r.passed for r in results}
    assert outcome == {"get_task.p95<200ms": True, "get_task.max<200ms": False, "errors<0.1%": False,
                       "errors<1%": True, "run.rps>=1.5": True, "run.rps>=3": False,
                       "rate_limited<=2%": True, "dropped_iterations==0": False,
                       "status.p95<1s": None, "mixed:get_task.p95<1s": None}
    assert "BREACHED" in results[1].describe() and "no samples" in results[8].describe()


def test_thresholds_from_a_file(tmp_path: Path) -> None:
    listed = tmp_path / "list.toml"
    listed.write_text('[harness]\nthresholds = ["get_task.p95<200ms", "errors<0.1%"]\n')
    assert load_settings({}, {}, listed).thresholds == ["get_task.p95<200ms", "errors<0.1%"]
    table = tmp_path / "table.toml"
    table.write_text('[thresholds]\nget_task = ["p95<200ms", "p99<1s"]\nerrors = "<0.1%"\n'
                     '"mixed:status" = ["max<2s"]\n')
    found = load_settings({}, {}, table).thresholds
    assert found == ["get_task.p95<200ms", "get_task.p99<1s", "errors<0.1%", "mixed:status.max<2s"]
    assert thresholds_from_value("run.p95<1s; errors<1%") == ["run.p95<1s", "errors<1%"]
    with pytest.raises(ThresholdError):
        thresholds_from_value({"get_task": "p95<<200ms"})
    assert load_settings({}, {}, tmp_path / "missing.toml").thresholds == []


def test_rates_and_durations() -> None:
    assert parse_rate("5/s") == 5.0 and parse_rate("300/m") == 5.0 and parse_rate("7") == 7.0
    assert parse_duration("60s") == 60.0 and parse_duration("1h30m") == 5400.0
    assert parse_duration("500ms") == 0.5 and parse_duration("90") == 90.0
    for bad in ("0/s", "fast"):
        with pytest.raises(ValueError):
            parse_rate(bad)
    with pytest.raises(ValueError):
        parse_duration("soon")


# -- HDR ----------------------------------------------------------------------------------------

def test_hdr_record_matches_hdrh_and_merges() -> None:
    rng = random.Random(7)
    ours, theirs, other = HdrSet(), new_histogram(), HdrSet()
    for _ in range(20_000):
        ns = int(rng.lognormvariate(14, 2.5))
        ours.record_ns("x", ns)
        theirs.record_value(min(3_600_000_000, max(1, ns // 1000)))
        other.record_ns("x", ns)
    mine = ours.histograms["x"]
    assert list(mine.counts) == list(theirs.counts)
    assert (mine.total_count, mine.min_value, mine.max_value) == (
        theirs.total_count, theirs.min_value, theirs.max_value)
    summary = summarize(mine)
    for label, q in (("p50", 50.0), ("p99", 99.0), ("p999", 99.9)):
        assert summary[label] == round(theirs.get_value_at_percentile(q) / 1000.0, 3)
    assert summary["mean"] == pytest.approx(theirs.get_mean_value() / 1000.0, rel=1e-3)
    merged = HdrSet.decode(ours.encode())
    merged.merge_encoded(other.encode())
    assert merged.count("x") == 40_000
    assert merged.summary("x")["p99"] == summary["p99"]  # type: ignore[index]
    ours.record_ms("y", 1.2345)  # 3 significant digits: 1.23 ms kept as 1.234-1.235
    assert ours.summary("y")["max"] == pytest.approx(1.2345, abs=0.002)  # type: ignore[index]


# -- pacing --------------------------------------------------------------------------------------

def _drive(pacer: BudgetPacer, start: float, end: float, step: float) -> list[float]:
    now, sent = start, []
    while now < end:
        wait = pacer.try_acquire(now)
        if wait is None:
            sent.append(now)
            now += step
        else:
            assert wait > now
            now = wait
    return sent


@pytest.mark.parametrize("jitter", [0.0, 0.08])
def test_budget_pacer_never_overfills_a_window(jitter: float) -> None:
    pacer = BudgetPacer(limit=20, window=2.0)
    sent = _drive(pacer, 1000.3, 1012.0, 0.003)
    # The server may count a request up to `jitter` later (latency, clock skew below the guard).
    per_window: dict[int, int] = {}
    for t in sent:
        per_window[int((t + jitter) // 2.0)] = per_window.get(int((t + jitter) // 2.0), 0) + 1
    assert max(per_window.values()) <= 20
    assert sum(per_window.values()) >= 20 * 5  # and it does use the budget


def test_budget_pacer_does_not_wait_below_the_budget() -> None:
    pacer = BudgetPacer(limit=1000, window=2.0)
    assert all(pacer.try_acquire(100.0 + i * 0.01) is None for i in range(400))
    assert pacer.throttled == 0
    pacer.spent(104.5)
    assert pacer.try_acquire(104.6) is not None  # the server said this window is used up


def test_shares_partition_the_budget() -> None:
    assert [Share(i, 3).quota(100) for i in range(3)] == [34, 33, 33]
    assert Share().quota(7) == 7
    budget = TaskBudget(5, Share(1, 2))
    assert [budget.take() for _ in range(3)] == [True, True, False]
    budget.refund()
    assert budget.take() and budget.exhausted


def test_slot_schedule_spreads_exactly_the_budget() -> None:
    for factor in (1.0, 2.0):
        schedules = [SlotSchedule(50, 2.0, factor, Share(i, 2)) for i in range(2)]
        slots = [s for sched in schedules for s in _take(sched.slots(1001.3), 2 * int(50 * factor))]
        windows: dict[int, int] = {}
        for at, window in slots:
            assert window * 2.0 + schedules[0].guard <= at <= (window + 1) * 2.0 - schedules[0].guard
            windows[window] = windows.get(window, 0) + 1
        assert min(windows) == 501  # starts at the next boundary, never inside a started window
        assert set(windows.values()) == {int(50 * factor)}


def _take(it: Iterator[tuple[float, int]], n: int) -> list[tuple[float, int]]:
    return [next(it) for _ in range(n)]


def test_phase_order_and_aliases() -> None:
    names = [s.name for s in phase_order(["over_limit", "poll", "at_limit", "mixed", "poll"])]
    assert names == ["fire_and_forget_poll", "mixed", "at_limit", "over_limit"]
    with pytest.raises(ValueError):
        phase_order(["nope"])


# -- merge and limit analysis ----------------------------------------------------------------

def _line(**fields: Any) -> str:
    return json.dumps(fields, separators=(",", ":"))


def test_merge_keeps_each_process_order_and_rebases_other_clocks(tmp_path: Path) -> None:
    a = [_line(task="t1", observer="a", channel="get", send_ns=10 + i, recv_ns=20 + i, wall=100.0 + i)
         for i in range(3)]
    b = [_line(task="t2", observer="b", channel="get", send_ns=5, recv_ns=6, wall=100.5)]
    (tmp_path / "observations.w0.jsonl").write_text("\n".join(a) + "\n")
    (tmp_path / "observations.w1.jsonl").write_text("\n".join(b) + "\n" + '{"torn')
    assert merge_histories(tmp_path, {1: 1_000}) == 4
    merged = list(read_history(tmp_path / "observations.jsonl"))
    assert [o.observer for o in merged] == ["a", "b", "a", "a"]
    assert merged[1].send_ns == 1_005 and merged[1].recv_ns == 1_006


def _phase(tmp_path: Path, kind: str, limit: int = 4) -> Phase:
    return Phase(kind, kind, tmp_path, {}, PhaseMetrics(), 4.0, 2.0, {"get": limit})


def _obs(http: int, remaining: int | None, reset: int, wall: float, key: str = "key1",
         **extra: Any) -> Observation:
    ex: dict[str, Any] = {"rl_group": "get", "rl_limit": 4, "rl_reset": reset, **extra}
    if remaining is not None:
        ex["rl_remaining"] = remaining
    if http == 429:
        ex.setdefault("retry_after", 1)
    return Observation("t", "o", "get", 1, 1_000_000, wall, http=http, key=key, extra=ex)


def _analyse(tmp_path: Path, kind: str, observations: list[Observation]) -> list[str]:
    phase = _phase(tmp_path, kind)
    phase.observations = lambda: iter(observations)  # type: ignore[method-assign]
    result = Analysis()
    check_limits(phase, result)
    return sorted(f.check for f in result.findings)


def test_limit_checks_on_synthetic_histories(tmp_path: Path) -> None:
    good = [_obs(200, 3 - i, 1002, 1000.1 + i * 0.1) for i in range(4)]
    rejected = [_obs(429, 0, 1002, 1000.6 + i * 0.1) for i in range(4)]
    assert _analyse(tmp_path, "over_limit", good + rejected) == []
    assert _analyse(tmp_path, "at_limit", good) == []
    # A 429 while pacing at the budget, and no full window: inconclusive too.
    assert _analyse(tmp_path, "at_limit", [*good[:3], rejected[0]]) == ["LD-AT-LIMIT-NO-429"]
    assert _analyse(tmp_path, "at_limit", good[:2]) == ["LD-AT-LIMIT-REACHED"]
    # Twice the budget and everything admitted: not shed, and over the limit.
    flood = [_obs(200, max(0, 3 - i), 1002, 1000.1 + i * 0.05) for i in range(8)]
    assert _analyse(tmp_path, "over_limit", flood) == ["LD-LIMIT-HEADERS", "LD-OVER-LIMIT-ADMITTED",
                                                      "LD-OVER-LIMIT-SHED"]
    early = [*good[:3], *rejected]
    assert _analyse(tmp_path, "over_limit", early) == ["LD-OVER-LIMIT-EARLY"]
    stuck = [_obs(200, 4, 1002, 1000.1 + i * 0.1) for i in range(4)]  # Remaining never counts down
    assert _analyse(tmp_path, "over_limit", stuck + rejected) == ["LD-LIMIT-HEADERS"]
    past = [_obs(200, 3 - i, 998, 1000.1 + i * 0.1) for i in range(4)]  # Reset in the past
    assert _analyse(tmp_path, "over_limit", past) == ["LD-LIMIT-HEADERS"]
    bare_429 = [*good, _obs(429, 0, 1002, 1000.9, retry_after=0, rl_problem=False)]
    assert _analyse(tmp_path, "over_limit", bare_429) == ["LD-LIMIT-HEADERS"]


# -- runs against the reference server ---------------------------------------------------------

@pytest.fixture(scope="module")
def load_server() -> Iterator[ReferenceServer]:
    """A clean server of our own: load runs use whole rate-limit windows."""
    with reference_server(fresh_keys(2), rate_window=WINDOW, speed=20.0,
                          extra_args=["--heartbeat", "0.2"]) as running:
        yield running


def _run(server_url: str, keys: list[str], tmp_path: Path, scenarios: list[str],
         **options: Any) -> SuiteResult:
    limits = load_limits().model_copy(update={"window_seconds": WINDOW})
    base: dict[str, Any] = {"users": 4, "duration_s": 1.5, "deadline_s": 5.0, "max_tasks": 5000}
    return run_load(server_url, keys, load_lifecycle(), limits, tmp_path,
                    LoadOptions(scenarios=scenarios, **{**base, **options}))


def _no_keys_leaked(root: Path, keys: list[str]) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            assert not any(key in text for key in keys), f"a key leaked into {path}"


def test_every_flow_scenario_is_clean(load_server: ReferenceServer, tmp_path: Path) -> None:
    result = _run(load_server.url, load_server.keys, tmp_path, FLOWS,
                  thresholds=["get_task.p95<5s", "errors<0.1%", "run.rps>=1"])
    assert result.status == "passed", [f.message for f in result.findings]
    assert result.findings == [] and result.error is None
    metrics = result.metrics
    assert metrics["errors"] == 0 and metrics["rate_limited"] == 0
    assert metrics["tasks_created"] > 0 and metrics["invariants"]["lost"] == 0
    for name in FLOWS:
        scenario = metrics["scenarios"][name]
        assert scenario["requests"] > 0 and scenario["errors"] == 0, name
    assert metrics["scenarios"]["upload"]["counts"]["uploads_compared"] > 0
    latency = metrics["latency_ms"]
    for name in ("run", "get_task", "status", "ndjson.ttfe", "ndjson.terminal", "sse.ttfe",
                 "ndjson.heartbeat_gap", "task.queue", "task.terminal", "iteration"):
        assert latency[name]["count"] > 0, name
    setups = [latency.get(f"task.setup_{kind}", {}).get("count", 0) for kind in ("cold", "warm")]
    assert sum(setups) > 0
    assert all(t["passed"] for t in metrics["thresholds"])
    # Locust's own CSVs and the histories are in the run folder; the history was appended.
    for name in FLOWS:
        assert (tmp_path / "load" / name / "locust_stats.csv").read_text().startswith("Type,Name")
    lines = (tmp_path / "observations.jsonl").read_text().splitlines()
    assert len(lines) == metrics["observations_appended"] > 0
    observations = list(read_history(tmp_path / "observations.jsonl"))
    assert {o.channel for o in observations} >= {"run", "get", "status", "ndjson", "sse"}
    assert all(o.key in ("key1", "key2") for o in observations if o.channel == "run")
    _no_keys_leaked(tmp_path, load_server.keys)


def test_limit_scenarios(tmp_path: Path) -> None:
    keys = fresh_keys(1)
    with reference_server(keys, rate_window=WINDOW, speed=20.0) as server:
        # Each limit phase runs at least one whole window from the next boundary, however short.
        result = _run(server.url, keys, tmp_path, ["at_limit", "over_limit"], duration_s=1.0)
    assert result.findings == [], [f.message for f in result.findings]
    at, over = result.metrics["scenarios"]["at_limit"], result.metrics["scenarios"]["over_limit"]
    assert at["rate_limited"] == 0 and at["errors"] == 0
    assert at["limits"]["windows_filled"] >= 1 and at["limits"]["header_problems"] == {}
    assert over["rate_limited"] > 0 and over["errors"] == 0
    assert over["limits"]["rejected"] == over["rate_limited"]
    assert over["limits"]["header_problems"] == {}
    _no_keys_leaked(tmp_path, keys)


def test_slow_reads_break_a_threshold_the_same_reads_meet_without_the_fault(
        load_server: ReferenceServer, tmp_path: Path) -> None:
    """The threshold is set from a clean run on this machine now, not from a wall-clock guess."""
    clean = _run(load_server.url, load_server.keys, tmp_path / "clean", ["fire_and_forget_poll"],
                 thresholds=["get_task.p95<10s"])
    assert clean.status == "passed", [f.message for f in clean.findings]
    clean_p95 = clean.metrics["latency_ms"]["get_task"]["p95"]
    # The fault adds 50 ms to every read: a bound 25 ms above the clean p95 separates the two.
    bound = f"get_task.p95<{clean_p95 + 25:.0f}ms"
    keys = fresh_keys(2)
    with reference_server(keys, rate_window=WINDOW, speed=20.0, faults=["slow-reads"],
                          extra_args=["--heartbeat", "0.2"]) as server:
        slow = _run(server.url, keys, tmp_path / "slow", ["fire_and_forget_poll"], thresholds=[bound])
    assert slow.metrics["latency_ms"]["get_task"]["p95"] >= clean_p95 + 40, (clean_p95, slow.metrics)
    assert {f.check for f in slow.findings} == {"LD-THRESHOLD"}, [f.message for f in slow.findings]


@pytest.mark.parametrize(("fault", "scenario", "expected", "options"), [
    ("status-regression", "fire_and_forget_poll", "LC-REGRESSION", {"deadline_s": 2.0}),
    ("lost-task", "run_wait", "LC-LOST-TASK", {"deadline_s": 1.5}),
    # The limit faults are proven below on the upload group alone (easy to fill on a busy machine).
    ("upload-bytes-altered", "upload", "LD-UPLOAD-ROUNDTRIP", {}),
])
def test_a_fault_under_load_is_found(fault: str, scenario: str, expected: str,
                                     options: dict[str, Any], tmp_path: Path) -> None:
    keys = fresh_keys(2)
    with reference_server(keys, rate_window=WINDOW, speed=20.0, faults=[fault],
                          extra_args=["--heartbeat", "0.2"]) as server:
        result = _run(server.url, keys, tmp_path, [scenario], duration_s=1.5, **options)
    assert result.status == "failed"
    assert expected in {f.check for f in result.findings}
    assert all(f.suite == "load" for f in result.findings)
    if scenario != "upload":  # nothing uploaded: the round trip is skipped, never passed vacuously
        assert "LD-UPLOAD-ROUNDTRIP" in result.skipped and "LD-UPLOAD-ROUNDTRIP" not in result.checks
    else:
        assert "LD-UPLOAD-ROUNDTRIP" in result.checks
    if expected == "LD-THRESHOLD":
        breach = next(f for f in result.findings if f.check == "LD-THRESHOLD")
        assert breach.evidence["observed"] >= 50.0  # the fault's 50 ms, measured


@pytest.mark.parametrize(("fault", "scenario", "expected"), [
    ("under-admit", "at_limit", "LD-AT-LIMIT-NO-429"),
    ("over-admit", "over_limit", "LD-OVER-LIMIT-ADMITTED"),
    ("no-rate-limit", "over_limit", "LD-OVER-LIMIT-SHED"),
    ("under-admit", "over_limit", "LD-OVER-LIMIT-EARLY"),
    ("remaining-not-counting", "over_limit", "LD-LIMIT-HEADERS"),
    ("reset-in-past", "at_limit", "LD-LIMIT-HEADERS"),
    ("remaining-on-429", "over_limit", "LD-LIMIT-HEADERS"),
])
def test_a_limit_fault_is_found(fault: str, scenario: str, expected: str, tmp_path: Path) -> None:
    # One key on one group whose budget is small (50 uploads a window: 25 req/s at the limit, 50
    # at twice it), so that even a busy machine fills its windows; all three groups need ~1,150
    # req/s per key, which three test workers on two cores cannot promise.
    keys = fresh_keys(1)
    with reference_server(keys, rate_window=WINDOW, speed=20.0, faults=[fault]) as server:
        result = _run(server.url, keys, tmp_path, [scenario], duration_s=1.0, limit_groups=["upload"])
    checks = {f.check for f in result.findings}
    assert expected in checks, [f.message for f in result.findings]
    by_request = result.metrics["scenarios"][scenario]["by_request"]
    assert set(by_request) == {"create_file"}, by_request  # the upload group alone was driven


def test_an_unknown_limit_group_is_refused(tmp_path: Path) -> None:
    result = _run("http://127.0.0.1:9", ["k"], tmp_path, ["at_limit"], limit_groups=["reads"])
    assert result.status == "error" and "unknown rate-limit group 'reads'" in (result.error or "")
    # The same choice for plain `locust -f`, from the environment.
    assert LoadConfig.from_env({"HARNESS_LIMIT_GROUPS": "get, upload"}).limit_groups == ["get", "upload"]
    with pytest.raises(ConfigError, match=r"limit_groups.0 \(from HARNESS_LIMIT_GROUPS\)"):
        LoadConfig.from_env({"HARNESS_LIMIT_GROUPS": "reads"})


def test_master_and_a_local_worker(load_server: ReferenceServer, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # With a shared token the master signs its plan and the worker checks it (the refusal of
    # another token's plan: tests/hostile/test_master_plan.py).
    monkeypatch.setenv(TOKEN_ENV, "shared-master-token")
    result = _run(load_server.url, load_server.keys, tmp_path, ["mixed"], processes=2, duration_s=1.5)
    assert result.status == "passed" and result.findings == [], [f.message for f in result.findings]
    scenario = result.metrics["scenarios"]["mixed"]
    assert scenario["requests"] > 0 and scenario["workers"] == 1
    phase = tmp_path / "load" / "mixed"
    # The worker's lines were merged into the run's history and stored nowhere else.
    assert not list(phase.glob("observations*")) and scenario["observations"] > 0
    assert len((tmp_path / "observations.jsonl").read_text().splitlines()) == scenario["observations"]
    summary = json.loads((phase / "summary.json").read_text())
    assert summary["role"] == "master" and all(w["done"] for w in summary["workers"])


def test_task_budget_and_unknown_key(load_server: ReferenceServer, tmp_path: Path) -> None:
    capped = _run(load_server.url, load_server.keys, tmp_path / "capped", ["run_wait"], max_tasks=3,
                  duration_s=1.5)
    assert capped.metrics["tasks_created"] == 3 and capped.findings == []
    refused = _run(load_server.url, ["inf_not_a_key"], tmp_path / "refused", ["fire_and_forget_poll"],
                   duration_s=1.0)
    assert [f.check for f in refused.findings] == ["LD-UNEXPECTED-ERRORS"]
    assert "HTTP 401" in refused.findings[0].message


def test_bad_options_and_guard(tmp_path: Path) -> None:
    limits = load_limits()
    bad = run_load("http://127.0.0.1:9", ["k"], load_lifecycle(), limits, tmp_path,
                   LoadOptions(thresholds=["get_task.p95<"]))
    assert bad.status == "error" and "threshold" in (bad.error or "")
    remote = run_load("https://api.example.com", ["k"], load_lifecycle(), limits, tmp_path,
                      LoadOptions())
    assert remote.status == "error" and "not loopback" in (remote.error or "")
    assert LoadConfig(allow_hosts=["api.example.com"]).guard_error("https://api.example.com") is None


def test_api_paths_take_the_pooled_client_with_the_same_bytes() -> None:
    # The lean transport of ApiUser.send: an API path skips the user agent, a redirect falls
    # back to it (which follows), and the request heads match the user agent's to the byte.
    root = Path(__file__).resolve().parents[2]
    script = root / "tests" / "suites" / "load" / "transport_probe.py"
    done = subprocess.run([sys.executable, str(script)], cwd=root,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    probe = json.loads(done.stdout.strip().splitlines()[-1])
    # A redirect to another origin is an answer (307), never a request: nothing reached it.
    assert probe["codes"] == [200] * 6 + [307] and probe["data"] == {"id": "t", "status": 2}
    assert probe["stolen"] == []
    heads = probe["heads"]
    assert [h.split("\r\n", 1)[0] for h in heads] == [
        "GET /api/tasks/t HTTP/1.1", "GET /api/tasks/t HTTP/1.1",  # pooled client, user agent
        "GET /api/tasks/old HTTP/1.1", "GET /api/tasks/moved HTTP/1.1",  # 302 followed, not re-sent
        "POST /api/apps/run HTTP/1.1", "POST /api/apps/run HTTP/1.1",  # pooled client, user agent
        "POST /api/apps/redirect HTTP/1.1", "GET /api/apps/moved HTTP/1.1",  # 303: GET, no body
        "GET /api/tasks/away HTTP/1.1"]
    assert heads[0] == heads[1] and "Authorization: Bearer inf_probe_key" in heads[0]
    assert heads[4] == heads[5] and "Content-Length: 11" in heads[4]
    assert "Content-Type" not in heads[-2] and "Content-Length" not in heads[-2]


def test_plain_locust_reads_the_same_settings_as_the_harness(tmp_path: Path) -> None:
    toml = tmp_path / "ci.toml"
    toml.write_text('max_tasks = 12\ndeadline = "90s"\nthresholds = ["errors<1%"]\n'
                    "[apps.quick]\napp = 'acme/echo'\ninput = { message = 'hi' }\n"
                    '[load]\narrival_rate = "120/m"\nload_dir = "here"\n')
    env = {"HARNESS_CONFIG": str(toml), "HARNESS_ALLOW_HOSTS": "api.example.com",
           "INFERENCE_API_KEY": "inf_sdk"}
    config = LoadConfig.from_env(env)
    assert (config.max_tasks, config.deadline_s, config.arrival_rate) == (12, 90.0, 2.0)
    assert config.thresholds == ["errors<1%"] and config.out_dir == "here"
    assert config.apps["poll"]["app"] == "acme/echo" and not config.apps_builtin
    assert config.guard_error("https://api.example.com") is None
    assert "inf_sdk" not in config.to_json()


def test_an_answer_that_never_came_is_indeterminate_not_an_error(tmp_path: Path) -> None:
    # unanswered-reads holds every 5th task read until the client leaves: the load users count it
    # as indeterminate (the lifecycle checker's rule), not as an unexpected error.
    keys = fresh_keys(2)
    with reference_server(keys, rate_window=WINDOW, speed=20.0, faults=["unanswered-reads"],
                          extra_args=["--heartbeat", "0.2"]) as server:
        result = _run(server.url, keys, tmp_path, ["fire_and_forget_poll"], deadline_s=1.0)
    assert "LD-UNEXPECTED-ERRORS" not in {f.check for f in result.findings}, \
        [f.message for f in result.findings]
    assert result.metrics["errors"] == 0 and result.metrics["indeterminate"] >= 1, result.metrics
