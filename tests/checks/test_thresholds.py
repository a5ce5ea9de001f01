"""Thresholds on the agent_chat scenario's metrics: they parse, and they gate what was measured."""

from __future__ import annotations

import pytest

from harness.checks.thresholds import (
    AGENT_METRICS,
    LATENCY_METRICS,
    MetricsView,
    ThresholdError,
    evaluate,
    parse_threshold,
)


def test_the_agent_metrics_parse_as_latencies() -> None:
    t = parse_threshold("agent_chat:agent.first_delta.p99<2s")
    assert (t.scenario, t.metric, t.stat, t.op, t.value, t.kind) == (
        "agent_chat", "agent.first_delta", "p99", "<", 2000.0, "latency")
    assert parse_threshold("agent.delta_gap.p(95)<=50ms").stat == "p95"
    assert parse_threshold("agent.turn.count>=10").kind == "count"
    assert parse_threshold("tool_result.errors<1%").kind == "rate"  # a request name of the scenario
    assert set(AGENT_METRICS) <= set(LATENCY_METRICS)
    for bad in ("agent.first_delta<2s", "agent.first_token.p99<2s", "agent.turn.errors<1%",
                "agent.delta_gap.p99<1%"):
        with pytest.raises(ThresholdError):
            parse_threshold(bad)


def test_agent_thresholds_gate_the_scenario_they_name() -> None:
    chat = MetricsView(duration_s=4.0, latency={
        "agent.first_delta": {"count": 80, "p50": 57.0, "p99": 78.0},
        "agent.delta_gap": {"count": 500, "p95": 7.3, "max": 15.0},
        "agent.turn": {"count": 80, "p50": 89.0, "p99": 138.0}}, requests={"agent_run": 80})
    texts = ["agent_chat:agent.first_delta.p99<2s", "agent_chat:agent.first_delta.p99<50ms",
             "agent_chat:agent.delta_gap.max<=15", "agent_chat:agent.turn.rps>=20",
             "agent_chat:agent.turn.rps>=21", "run_wait:agent.turn.p50<1s"]
    outcome = {r.threshold.text: r.passed for r in evaluate([parse_threshold(t) for t in texts],
                                                            MetricsView(duration_s=4.0),
                                                            {"agent_chat": chat})}
    assert outcome == {"agent_chat:agent.first_delta.p99<2s": True,
                       "agent_chat:agent.first_delta.p99<50ms": False,
                       "agent_chat:agent.delta_gap.max<=15": True, "agent_chat:agent.turn.rps>=20": True,
                       "agent_chat:agent.turn.rps>=21": False, "run_wait:agent.turn.p50<1s": None}
