"""Rate-limit suite: the judge on simulated targets, then the suite against real reference servers.

The simulated half drives the reference server's own limiter on a virtual clock, with bursts
starting anywhere in a window, several connections and jittered latencies: it shows that the
judgement needs no timing slack (windows come from the target's Reset), so a limit one off in
either direction is caught whenever the client can send limit+1 requests inside one window, and
that a client too slow for that gets a warning (RL-COVERAGE), never a false error.
"""

from __future__ import annotations

import heapq
import json
import random
import time
from pathlib import Path

import pytest

from harness.checks.lifecycle import check_history
from harness.checks.ratelimit import CHECKS, Baseline, Exchange, judge
from harness.contract import load_lifecycle, load_limits
from harness.findings import Finding, SuiteResult
from harness.history import read_history
from harness.net.reference import ReferenceServer
from harness.server.faults import Faults
from harness.server.ratelimit import FixedWindowLimiter
from harness.settings import Settings
from harness.suites.base import Context
from harness.suites.ratelimit.options import RateLimitOptions
from harness.suites.ratelimit.run import run_ratelimit
from harness.suites.registry import SUITES
from tests.conftest import StartServer

PROBLEM = json.dumps({"type": "https://api.inference.sh/errors/rate_limited", "title": "Rate limited",
                      "status": 429, "detail": "slow down"}).encode()
EPOCH = 1_900_000_000.0


def simulate(faults: list[str], limit: int, window: float, phase: float, rate: float, lanes: int,
             rng: random.Random, reset_header: bool = True) -> list[Exchange]:
    """A burst against the reference limiter on a virtual clock, as the suite would send it.

    It starts `phase` windows past a boundary; each lane sends its next request when the last
    came back, the lanes together at about `rate` requests/s; processing and answer delays are
    random (a lane never sends faster than its share of the rate, and waits for its answer),
    so answers come back out of order across lanes. Like the suite, sending stops at
    the first 429, or after limit+2 requests in one window of the target, or 3 windows' worth.
    """
    limiter = FixedWindowLimiter({"g": limit}, window, Faults(faults))
    gap = lanes / rate
    start = EPOCH + phase * window
    queue = [(start + i * gap / lanes + rng.uniform(0, 2e-4), i, start + i * gap / lanes)
             for i in range(lanes)]
    heapq.heapify(queue)
    out: list[Exchange] = []
    first_429_done = float("inf")
    per_window: dict[int, int] = {}
    sent = 0
    while queue:
        processed, lane, sent_at = heapq.heappop(queue)
        decision = limiter.hit("k", "g", processed)
        done = processed + rng.uniform(1e-4, 0.4 * gap)
        headers = {k.lower(): v for k, v in decision.headers().items()}
        if not reset_header:
            headers.pop("x-ratelimit-reset")
        headers["content-type"] = "application/problem+json" if not decision.admitted else \
            "application/json"
        out.append(Exchange(len(out), "key1", "g", "burst", f"lane{lane}", "GET", "/x",
                            int((sent_at - EPOCH) * 1e9), sent_at, int((done - EPOCH) * 1e9),
                            http=200 if decision.admitted else 429, headers=headers,
                            body=b"{}" if decision.admitted else PROBLEM))
        sent += 1
        if not decision.admitted:
            first_429_done = min(first_429_done, done)
        per_window[decision.reset] = per_window.get(decision.reset, 0) + 1
        next_send = max(done, sent_at + gap) + rng.uniform(0, 1e-4)
        next_processed = next_send + rng.uniform(5e-5, 0.3 * gap)
        if next_send < first_429_done and per_window[decision.reset] < limit + 2 \
                and sent < 3 * (limit + 2):
            heapq.heappush(queue, (next_processed, lane, next_send))
    return out


def baseline(limit: int, window: float) -> Baseline:
    return Baseline(limits={"g": limit}, window_s=window, tolerance_s=0.05, fresh_after_ns=-1,
                    expect_limit_header={"g": limit})


def checks_of(findings: list[Finding]) -> set[str]:
    return {f.check for f in findings}


def test_one_off_limits_are_always_caught_when_the_client_is_fast_enough() -> None:
    """Any phase, 1-4 lanes, jitter, 1.2x to 6x the needed rate: exact limit quiet, one off caught."""
    rng = random.Random(5)
    limit, window = 50, 1.0
    for case in range(150):
        phase, lanes = rng.random(), rng.randint(1, 4)
        rate = rng.uniform(1.2, 6.0) * (limit + 2 * lanes) / window
        for faults, expected in (([], None), (["over-admit"], "RL-OVER-ADMIT"),
                                 (["under-admit"], "RL-EARLY-429")):
            exchanges = simulate(faults, limit, window, phase, rate, lanes, rng)
            found = judge(exchanges, baseline(limit, window), ["g"]).findings
            context = f"case {case}: phase {phase:.2f}, {lanes} lanes, {rate:.0f}/s, faults {faults}"
            assert checks_of(found) == ({expected} if expected else set()), \
                f"{context}: {[f.message for f in found]}"


def test_without_reset_headers_a_one_off_is_caught_or_declared_undecided() -> None:
    """Epoch-aligned fallback: a request straddling a boundary may count in either window."""
    rng = random.Random(6)
    limit, window = 50, 1.0
    decided = 0
    for _ in range(100):
        phase, lanes = rng.random(), rng.randint(1, 4)
        rate = rng.uniform(1.2, 6.0) * (limit + 2 * lanes) / window
        for faults, expected in (([], None), (["over-admit"], "RL-OVER-ADMIT"),
                                 (["under-admit"], "RL-EARLY-429")):
            exchanges = simulate(faults, limit, window, phase, rate, lanes, rng, reset_header=False)
            found = checks_of(judge(exchanges, baseline(limit, window), ["g"]).findings)
            found -= {"RL-HEADERS"}  # the missing Reset itself
            assert found in ({expected} if expected else set(), {"RL-COVERAGE"}), (faults, found)
            decided += found != {"RL-COVERAGE"}
    assert decided > 200  # most: only a window with a straddling request stays undecided


def test_a_client_too_slow_gets_a_coverage_warning_never_a_false_error() -> None:
    rng = random.Random(7)
    limit, window = 50, 1.0
    for _ in range(60):
        rate = rng.uniform(0.2, 0.8) * limit / window
        for faults in ([], ["over-admit"], ["under-admit"]):
            exchanges = simulate(faults, limit, window, rng.random(), rate, rng.randint(1, 3), rng)
            found = judge(exchanges, baseline(limit, window), ["g"]).findings
            assert checks_of(found) == {"RL-COVERAGE"}
            assert found[0].severity == "warning"


def test_windows_holding_earlier_requests_are_not_judged_by_count() -> None:
    """Requests of another suite (unrecorded) may share the probe's window: no early-429 there."""
    exchanges = simulate(["under-admit"], 50, 1.0, 0.1, 2000.0, 2, random.Random(1))
    cut = exchanges[-1].send_ns + 1
    late = Baseline(limits={"g": 50}, window_s=1.0, tolerance_s=0.05, fresh_after_ns=cut)
    assert checks_of(judge(exchanges, late, ["g"]).findings) == {"RL-COVERAGE"}


# -- the suite against reference servers ----------------------------------------------------


def _run(start_server: StartServer, window: float, faults: list[str] | None = None,
         options: RateLimitOptions | None = None, history: Path | None = None,
         contract_window: float | None = None) -> SuiteResult:
    limits = load_limits().model_copy(update={"window_seconds": contract_window or window})
    notes: list[str] = []
    with start_server(rate_window=window, faults=faults or []) as srv:
        started = time.monotonic()
        result = run_ratelimit(srv.url, srv.keys, limits, history, options or RateLimitOptions(),
                               notes.append)
        result.metrics["measured_s"] = round(time.monotonic() - started, 2)
    result.metrics["notes"] = notes
    return result


def _report(result: SuiteResult) -> str:
    groups = result.metrics.get("groups", {})
    rates = ", ".join(f"{g} {m['burst_requests']} in {m['burst_s']} s" for g, m in groups.items())
    return (f"suite {result.metrics['measured_s']} s (window {result.metrics['window_s']} s, "
            f"bursts {result.metrics.get('burst_s')} s: {rates})")


# Not 1 s: 1,001 reads must then fit in one second, which a busy machine cannot always do, and the
# suite rightly says RL-COVERAGE (not proven) instead of passing. Most faults below run at 1 s.
@pytest.mark.parametrize("window", [2.0, 5.0])
def test_clean_server_has_no_findings(start_server: StartServer, window: float,
                                      record_property: pytest.RecordProperty,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    result = _run(start_server, window)
    assert result.status == "passed", [f"{f.check}: {f.message}" for f in result.findings]
    assert result.findings == []
    metrics = result.metrics
    # Every group was exhausted in a window of its own, counted exactly, and verified clean.
    for group, data in metrics["groups"].items():
        assert data["observed_limit"] == data["limit"], group
        assert data["observed_window_s"] == window, group
    assert metrics["side_effects"] == {"run": "verified", "upload": "verified"}
    assert metrics["windows_by"] == {"run": "reset", "get": "reset", "upload": "reset"}
    assert set(metrics["group_isolation_pairs"]) >= {"run->get", "get->upload", "upload->run"}
    assert "RL-KEY-ISOLATION" in result.checks and "RL-DISCOVER" not in result.checks
    assert metrics["tasks_created"] <= metrics["billable_planned"]
    assert any("billable runs" in n for n in metrics["notes"])
    # About one window plus the wait for a boundary (at most one window) and a margin.
    assert metrics["measured_s"] < 2 * window + 5
    record_property("ratelimit_suite", _report(result))
    with capsys.disabled():
        print(f"\n  clean, {window:g} s window: {_report(result)}")


FAULTS: list[tuple[str, tuple[str, ...]]] = [
    ("over-admit", ("RL-OVER-ADMIT",)),
    ("under-admit", ("RL-EARLY-429",)),
    ("remaining-not-counting", ("RL-REMAINING",)),
    ("reset-in-past", ("RL-RESET", "RL-RETRY-AFTER")),
    ("shared-bucket", ("RL-KEY-ISOLATION",)),
    ("rate-limited-side-effect", ("RL-429-SIDE-EFFECT",)),
    ("limit-header-doubled", ("RL-LIMIT-HEADER",)),
    ("remaining-on-429", ("RL-REMAINING-429",)),
    ("groups-block-together", ("RL-GROUP-ISOLATION",)),
    ("sparse-rate-headers", ("RL-HEADERS",)),
    ("problem-status-mismatch", ("RL-429-PROBLEM",)),
    ("penalty-window", ("RL-AFTER-RESET",)),
]


def test_every_check_has_a_proof() -> None:
    # RL-COVERAGE: the simulated slow clients above; RL-DISCOVER: the discover test below.
    proven = {check for _, checks in FAULTS for check in checks} | {"RL-COVERAGE", "RL-DISCOVER"}
    assert proven == set(CHECKS), sorted(set(CHECKS) ^ proven)


@pytest.mark.parametrize(("fault", "checks"), FAULTS, ids=[f for f, _ in FAULTS])
def test_each_fault_is_caught_by_its_check(start_server: StartServer, fault: str,
                                           checks: tuple[str, ...]) -> None:
    # The tightest window: 1,000 reads must fit in one second. The two faults judged in every group
    # get two: on a busy machine the read burst missed one second, and the group went unjudged.
    result = _run(start_server, 2.0 if fault in ("over-admit", "under-admit") else 1.0, [fault])
    found = {f.check for f in result.findings}
    assert set(checks) <= found, [f"{f.check}: {f.message}" for f in result.findings]
    assert result.status == "failed"
    hit = [f for f in result.findings if f.check in checks]
    assert all(f.repro and "$INFERENCE_API_KEY" in f.repro for f in hit)
    assert all(f.evidence.get("witness") for f in hit)
    if fault in ("over-admit", "under-admit"):
        # One off, in each group: 100 runs, 1,000 reads and 50 uploads per window.
        assert {f.evidence["group"] for f in hit} == {"run", "get", "upload"}
        assert found == set(checks)


def test_discover_reports_the_window_against_the_contract(start_server: StartServer) -> None:
    result = _run(start_server, 1.0, options=RateLimitOptions(discover=True, groups=["get", "upload"]),
                  contract_window=3.0)
    assert [(f.check, f.severity) for f in result.findings] == [("RL-DISCOVER", "warning")]
    assert result.metrics["discovered_window_s"] == 1
    assert result.metrics["window_s"] == 1.0 and result.metrics["contract_window_s"] == 3.0
    assert "RL-DISCOVER" in result.checks


def test_the_run_group_is_skipped_beyond_the_task_budget(server: ReferenceServer) -> None:
    notes: list[str] = []
    result = run_ratelimit(server.url, server.keys, load_limits(), None,
                           RateLimitOptions(groups=["run"], max_tasks=20), notes.append)
    assert result.status == "skipped" and result.metrics["skipped_groups"]["run"]
    assert "tasks_created" not in result.metrics
    assert any("skipped" in n for n in notes)


def test_suite_entry_writes_every_request_to_the_run_history(start_server: StartServer,
                                                             tmp_path: Path) -> None:
    limits = load_limits().model_copy(update={"window_seconds": 1.0})
    with start_server(rate_window=1.0) as srv:
        ctx = Context(srv.url, srv.keys, load_lifecycle(), limits, tmp_path, Settings(), lambda _m: None,
                      tasks_left=1000)
        result = SUITES["ratelimit"].run(ctx, None)
    assert result.findings == []
    lines = [json.loads(line) for line in (tmp_path / "observations.jsonl").read_text().splitlines()]
    assert len(lines) == result.metrics["requests"]
    refused = [o for o in lines if o["http"] == 429]
    assert refused and all(o["extra"]["rl_remaining"] == 0 and o["extra"]["retry_after"] >= 1
                           for o in refused)
    assert {o["extra"]["rl_group"] for o in lines} == {"run", "get", "upload"}
    assert all("task" not in o and "send_ns" in o and "recv_ns" in o for o in lines)
    assert {o["extra"]["rl_role"] for o in lines} >= {"probe", "burst", "follow", "key2", "after-reset",
                                                       "verify"}
    # The same file feeds `harness check-history`: these requests carry no task for it to judge.
    report = check_history(read_history(tmp_path / "observations.jsonl"), load_lifecycle())
    assert report.findings == [] and report.metrics["tasks"] == 0
