"""The per-endpoint table of a load phase."""

from __future__ import annotations

import math

from harness.suites.load.endpoints import endpoint_rows, significant


def test_three_significant_digits() -> None:
    assert significant(0.66812) == 0.668 and significant(34.3039) == 34.3 and significant(12345.0) == 12300
    assert significant(0.0) == 0.0 and significant(None) is None and significant(math.nan) is None


def test_a_row_per_request_name_with_stream_times() -> None:
    latency = {"get_task": {"p50": 0.6681, "p90": 2.347, "p95": 3.217, "p99": 5.139, "max": 34.303},
               "stream_sse": {"p50": 1.0, "p95": 2.0}, "sse.ttfe": {"p50": 3.0, "p95": 7.51},
               "sse.terminal": {"p50": 180.4, "p95": 410.2}}
    rows = endpoint_rows({"stream_sse": 10, "get_task": 300}, {"get_task": 3}, latency, 2.0)
    assert [r["endpoint"] for r in rows] == ["get_task", "stream_sse"]
    assert rows[0] == {"endpoint": "get_task", "requests": 300, "rps": 150.0, "errors": 3, "p50": 0.668,
                       "p90": 2.35, "p95": 3.22, "p99": 5.14, "max": 34.3}
    assert rows[1]["ttfe_p95"] == 7.51 and rows[1]["terminal_p50"] == 180.0 and rows[1]["p99"] is None
    assert endpoint_rows({"run": 5}, {}, {}, 0.0)[0]["rps"] is None


def test_the_chat_stream_row_carries_the_agent_turn_times() -> None:
    latency = {"chat_stream": {"p50": 1.1, "p95": 2.9}, "agent.first_delta": {"p50": 57.247, "p95": 65.279},
               "agent.delta_gap": {"p50": 5.351, "p95": 7.327}, "agent.turn": {"p50": 89.215, "p95": 127.487},
               "ndjson.ttfe": {"p50": 3.0, "p95": 7.0}}
    rows = endpoint_rows({"chat_stream": 82, "agent_run": 82}, {}, latency, 4.0)
    chat = rows[1]
    assert {k: v for k, v in chat.items() if "_p" in k} == {
        "first_delta_p50": 57.2, "first_delta_p95": 65.3, "delta_gap_p50": 5.35, "delta_gap_p95": 7.33,
        "turn_p50": 89.2, "turn_p95": 127.0}
    assert not any("_p" in k for k in rows[0])  # agent_run: a plain request row
