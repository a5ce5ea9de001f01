"""agent_chat against the reference server: two-turn conversations with a client tool round trip.

A clean server gives the agent latencies (`agent.first_delta`, `agent.delta_gap`, `agent.turn`)
with counts that match the conversations, the per-endpoint row carries them, and thresholds on
them pass or breach (LD-THRESHOLD). A server with the `delta-gap` and `tool-result-ignored`
faults makes the same scenario report errors (LD-UNEXPECTED-ERRORS). Both run at once.
"""

from __future__ import annotations

import threading
from pathlib import Path

from harness.contract import load_lifecycle, load_limits
from harness.findings import SuiteResult
from harness.net.reference import fresh_keys, reference_server
from harness.suites.load.run import LoadOptions, run_load

THRESHOLDS = ["agent_chat:agent.first_delta.p99<2s", "agent_chat:agent.turn.p50<1ms",
              "agent.delta_gap.p95<1s"]


def _run(faults: list[str], folder: Path, thresholds: list[str]) -> SuiteResult:
    keys = fresh_keys(1)
    with reference_server(keys, rate_window=2.0, speed=20.0, faults=faults,
                          extra_args=["--heartbeat", "0.2"]) as server:
        limits = load_limits().model_copy(update={"window_seconds": 2.0})
        return run_load(server.url, keys, load_lifecycle(), limits, folder, LoadOptions(
            scenarios=["agent_chat"], users=3, duration_s=1.0, deadline_s=5.0, max_tasks=5000,
            thresholds=thresholds))


def test_agent_chat_measures_turns_and_catches_a_faulty_agent(tmp_path: Path) -> None:
    runs = {"clean": ([], THRESHOLDS), "faulty": (["delta-gap", "tool-result-ignored"], [])}
    results: dict[str, SuiteResult] = {}
    threads = [threading.Thread(target=lambda n=name, f=faults, t=gates: results.__setitem__(
        n, _run(f, tmp_path / n, t))) for name, (faults, gates) in runs.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    clean = results["clean"]
    chat = clean.metrics["scenarios"]["agent_chat"]
    counts, latency = chat["counts"], chat["latency_ms"]
    assert chat["errors"] == 0, chat["error_reasons"]
    conversations = counts["conversations"]
    assert conversations > 0 and counts["tool_roundtrips"] == conversations, counts
    assert "tool_not_called" not in counts  # the scripted model always asks for the calculator
    # Two turns a conversation (a turn cut by the phase's end may add one), each timed once.
    turns = counts["agent_turns"]
    assert 2 * conversations <= turns <= 2 * conversations + 3, counts
    assert latency["agent.turn"]["count"] == latency["agent.first_delta"]["count"] == turns
    assert latency["agent.delta_gap"]["count"] > 3 * turns  # every answer is several deltas
    assert 0 < latency["agent.first_delta"]["p50"] < latency["agent.turn"]["p50"]
    assert chat["by_request"]["tool_result"]["requests"] >= conversations
    row = next(r for r in chat["endpoints"] if r["endpoint"] == "chat_stream")
    assert row["first_delta_p95"] > 0 and row["turn_p95"] > row["first_delta_p50"]
    # The thresholds gate what was measured: one breached, the others hold.
    gates = {t["threshold"]: t["passed"] for t in clean.metrics["thresholds"]}
    assert gates == {THRESHOLDS[0]: True, THRESHOLDS[1]: False, THRESHOLDS[2]: True}
    assert [f.check for f in clean.findings] == ["LD-THRESHOLD"]
    assert "agent.turn.p50<1ms" in clean.findings[0].message

    faulty = results["faulty"]
    reasons = faulty.metrics["scenarios"]["agent_chat"]["error_reasons"]
    assert reasons.get("chat_stream: delta seq not consecutive", 0) > 0, reasons  # delta-gap
    assert reasons.get("get_chat: the answer after the calculator's result lacks 714", 0) > 0, reasons
    assert "LD-UNEXPECTED-ERRORS" in {f.check for f in faulty.findings}
