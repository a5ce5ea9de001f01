"""The lifecycle suite against real reference servers: clean, and each lifecycle fault caught."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.contract import load_lifecycle, load_limits
from harness.history import read_history
from harness.net.reference import ReferenceServer
from harness.suites.lifecycle.run import LifecycleOptions, run_lifecycle
from tests.conftest import TEST_WINDOW, StartServer

LIMITS = load_limits().model_copy(update={"window_seconds": TEST_WINDOW})

CAUGHT_BY: dict[str, str | tuple[str, ...]] = {
    # A read after the end shows the status before it: a regression, and a terminal flip.
    "status-regression": ("LC-REGRESSION", "LC-TERMINAL-FLIP"),
    # An ended task's stream closes at once: no snapshot first, and no terminal update.
    "stream-without-terminal": ("LC-STREAM-NO-TERMINAL", "LC-STREAM-SNAPSHOT-FIRST"),
    "events-after-terminal": "LC-STREAM-AFTER-TERMINAL",
    "completed-without-output": "LC-COMPLETED-OUTPUT",
    "cross-key-read": "LC-ISOLATION",
    "float-status": "LC-UNKNOWN-STATUS",
    "cancel-ignored": "LC-CANCEL-IGNORED",
    "spontaneous-cancel": "LC-CANCEL-UNREQUESTED",
    "lost-task": "LC-LOST-TASK",
    "duplicate-id": "LC-DUPLICATE-ID",
    "setup-always": "LC-SETUP-WARM",
    "run-status-queued": "LC-INITIAL-STATUS",
    "failed-without-error": "LC-FAILED-ERROR",
}
# Faults that touch separate facts (a run's answer, an output, an error, another key's reads, a
# warm run's phases) share one server and one run: one start instead of five.
SHARED = ("completed-without-output", "cross-key-read", "failed-without-error", "run-status-queued",
          "setup-always")
FAULT_RUNS = [SHARED, *((fault,) for fault in sorted(CAUGHT_BY) if fault not in SHARED)]


def test_clean_server_zero_findings(server: ReferenceServer, tmp_path: Path) -> None:
    history = tmp_path / "observations.jsonl"
    result = run_lifecycle(server.url, server.keys, load_lifecycle(), LIMITS, history,
                           LifecycleOptions(seed=7, tasks=24, deadline_s=20))
    assert result.findings == [], [f.message for f in result.findings]
    metrics = result.metrics
    assert metrics["tasks_created"] >= 24 and metrics["terminal"] == metrics["tasks"]
    assert metrics["warm_hit_rate"] == 1.0 and metrics["lost"] == 0
    assert metrics["seed"] == 7  # kept, so a run can be planned again
    channels = {obs.channel for obs in read_history(history)}
    assert {"run", "get", "status", "ndjson", "sse", "cancel"} <= channels
    assert server.keys[0] not in history.read_text()


@pytest.mark.parametrize("faults", FAULT_RUNS, ids=lambda f: "+".join(f))
def test_fault_is_caught(start_server: StartServer, tmp_path: Path, faults: tuple[str, ...]) -> None:
    with start_server(faults=list(faults), extra_args=["--heartbeat", "0.5"]) as srv:
        result = run_lifecycle(srv.url, srv.keys, load_lifecycle(), LIMITS, tmp_path / "obs.jsonl",
                               LifecycleOptions(seed=3, tasks=16, deadline_s=4))
    checks = {f.check for f in result.findings}
    for fault in faults:
        wanted = CAUGHT_BY[fault]
        assert set((wanted,) if isinstance(wanted, str) else wanted) <= checks, (fault, sorted(checks))
    assert result.status == "failed"


def test_heartbeat_gap_is_caught(start_server: StartServer, tmp_path: Path) -> None:
    # Speed 1: a 1 s sleep is silent while running; heartbeats every 0.1 s fill it on a clean
    # server, and the fault leaves a gap over the 0.5 s bound.
    for faults, expect in (([], False), (["no-heartbeats"], True)):
        with start_server(speed=1.0, faults=faults, extra_args=["--heartbeat", "0.1"]) as srv:
            result = run_lifecycle(srv.url, srv.keys, load_lifecycle(), LIMITS,
                                   tmp_path / f"{expect}.jsonl",
                                   LifecycleOptions(seed=5, tasks=2, clients=4, deadline_s=20,
                                                    cancel_share=0.0, heartbeat_bound_s=0.5))
        gaps = [f for f in result.findings if f.check == "LC-HEARTBEAT-GAP"]
        assert bool(gaps) is expect, [f.message for f in result.findings]
