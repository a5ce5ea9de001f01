"""The conformance suite's sans-I/O parts: response rules, stream rules, pacing, the collector."""

from __future__ import annotations

import json
import time
from typing import Any

import yaml

from harness.checks.issues import Issue
from harness.checks.responses import Exchange, OperationTable, RuleSet, check_exchange
from harness.checks.streams import StreamCapture, StreamLineSchema, judge_stream
from harness.contract import contracts_dir, load_lifecycle, load_limits
from harness.net.decoders import NdjsonDecoder
from harness.suites.contract.traffic import Collector, Pacer, Traffic, repro_of

OPENAPI = yaml.safe_load((contracts_dir() / "openapi.yaml").read_text())
RULES = RuleSet(load_lifecycle(), load_limits(), OperationTable.from_openapi(OPENAPI))
NOW = 1_800_000_000
DATE = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(NOW))
GOOD_RL = {"x-ratelimit-limit": "1000", "x-ratelimit-remaining": "998",
           "x-ratelimit-reset": str(NOW + 30), "date": DATE}


def exchange(method: str, path: str, status: int, body: Any, headers: dict[str, str] | None = None,
             content_type: str = "application/json") -> Exchange:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Exchange(method, f"http://t{path}", path, status,
                    {"content-type": content_type, **(headers or {})},
                    raw, NOW + 0.5, auth="key")


def checks(ex: Exchange) -> set[str]:
    return {issue.check for issue in check_exchange(ex, RULES)}


TASK = {"id": "task_1", "status": 10, "status_text": "completed"}


def test_operations_prefer_literal_paths() -> None:
    table = RULES.operations
    assert table.operation("GET", "/files") == "GET /files"
    assert table.operation("GET", "/files/f1/x.png") == "GET /files/{id}/{filename}"
    assert table.operation("GET", "/tasks/t1/stream") == "GET /tasks/{id}/stream"
    assert table.operation("PATCH", "/tasks/t1") is None


def test_a_conformant_answer_passes() -> None:
    envelope = {"success": True, "data": TASK, "messages": []}
    assert checks(exchange("GET", "/tasks/task_1", 200, envelope, GOOD_RL)) == set()


def test_envelope_status_and_headers() -> None:
    assert checks(exchange("GET", "/tasks/task_1", 200, TASK, GOOD_RL)) == {"CT-ENVELOPE"}
    float_task = {"success": True, "data": {**TASK, "status": 10.0}, "messages": []}
    assert checks(exchange("GET", "/tasks/task_1", 200, float_task, GOOD_RL)) == {
        "CT-TASK-STATUS", "CT-SDK-STATUS-TYPE"}
    no_headers = {"date": DATE}
    assert checks(exchange("GET", "/tasks/task_1", 200, {"success": True, "data": TASK, "messages": []},
                           no_headers)) == {"CT-RATE-HEADERS"}
    past = {**GOOD_RL, "x-ratelimit-reset": str(NOW - 5)}
    assert "CT-RATE-HEADERS" in checks(exchange("GET", "/workers", 200, {"success": True, "data": [],
                                                                          "messages": []}, past))
    # healthz and downloads carry neither the envelope nor rate-limit headers
    assert checks(exchange("GET", "/healthz", 200, {"status": "ok"})) == set()


def test_problem_bodies() -> None:
    problem = {"type": "https://api.inference.sh/errors/task_not_found", "title": "Task not found",
               "status": 404, "detail": "no", "error": {"code": "task_not_found", "message": "no"}}
    ok = exchange("GET", "/tasks/x", 404, problem, GOOD_RL, "application/problem+json")
    assert checks(ok) == set()
    assert checks(exchange("GET", "/tasks/x", 404, {**problem, "status": 400}, GOOD_RL,
                           "application/problem+json")) == {"CT-PROBLEM-STATUS"}
    assert checks(exchange("GET", "/tasks/x", 404, b"nope", GOOD_RL, "text/plain")) == {"CT-PROBLEM"}
    assert checks(exchange("GET", "/tasks/x", 404, b"<html>", GOOD_RL)) == {"CT-JSON-BODY", "CT-PROBLEM"}
    # 401 carries no rate-limit headers (no key, no budget)
    unauthorized = {**problem, "status": 401, "type": "https://api.inference.sh/errors/unauthorized"}
    assert checks(exchange("GET", "/workers", 401, unauthorized, {}, "application/problem+json")) == set()


def _capture(lines: list[bytes], closed: bool = True, task_id: str = "task_1") -> StreamCapture:
    decoder = NdjsonDecoder()
    cap = StreamCapture("ndjson", task_id, "test", status=200, content_type="application/x-ndjson",
                        closed=closed, deadline_s=5.0)
    for index, event in enumerate(decoder.feed(b"".join(lines))):
        cap.events.append((index * 0.1, event))
    cap.closed_at = len(cap.events) * 0.1 if closed else None
    return cap


def _update(status: int, fields: list[str] | None = None, **extra: Any) -> bytes:
    name = load_lifecycle().statuses[status]
    task = {"id": "task_1", "short_id": "1", "status": status, "status_text": name, "app": "a", "input": {},
            "output": {"m": 1} if status == 10 else None, "error": None, "logs": [], "events": [],
            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z", **extra}
    return json.dumps({"data": task, "fields": fields or list(task)}).encode() + b"\n"


def judge(cap: StreamCapture) -> set[str]:
    return {i.check for i in judge_stream(cap, load_lifecycle(), StreamLineSchema(OPENAPI), 0.5)}


def test_stream_rules() -> None:
    assert judge(_capture([_update(1), b'{"type":"heartbeat"}\n', _update(7, ["status"]),
                           _update(10, ["status", "output"])])) == set()
    assert judge(_capture([_update(1), b": ping\n", _update(10)])) == {"CT-SDK-NDJSON-NON-JSON"}
    assert judge(_capture([_update(1), _update(7, ["status"])])) == {"CT-SDK-STREAM-CLOSED-EARLY"}
    assert judge(_capture([_update(1), _update(7, ["status"])], closed=False)) == {"CT-STREAM-TERMINAL"}
    assert judge(_capture([_update(1), _update(10), _update(10, ["logs"])])) == {"CT-STREAM-AFTER-TERMINAL"}
    assert judge(_capture([_update(1), b'{"data":{"status":10},"fields":["status"]}\n'])) == {
        "CT-SDK-TERMINAL-WITHOUT-TASK"}
    assert judge(_capture([_update(7), _update(2, ["status"]), _update(10)])) == {"CT-STREAM-ORDER"}
    raw = _update(1).replace(b'"app":"a"', b'"app":"a\xe2\x80\xa8b"').replace(b'"app": "a"',
                                                                              b'"app": "a\xe2\x80\xa8b"')
    assert "CT-SDK-RAW-LINE-SEPARATOR" in judge(_capture([raw, _update(10)]))


def test_pacer_spaces_requests_and_holds_on_low_remaining() -> None:
    clock = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    pacer = Pacer({"run": 100}, window_s=60.0, utilisation=0.5, clock=lambda: clock[0], sleep=sleep,
                  wall=lambda: 1000.0)
    pacer.acquire("run")
    pacer.acquire("run")
    assert slept == [1.2]  # 60 s / (100 * 0.5)
    pacer.observe("run", 200, {"x-ratelimit-remaining": "1", "x-ratelimit-reset": "1030"},
                  "X-RateLimit-Remaining", "X-RateLimit-Reset", "Retry-After")
    pacer.acquire("run")
    assert clock[0] >= 1.2 + 30  # held until the target's reset
    assert pacer.observe("run", 429, {"retry-after": "7"}, "X-RateLimit-Remaining", "X-RateLimit-Reset",
                         "Retry-After") == 7


def test_a_429_is_its_own_warning_and_keys_never_leak() -> None:
    key = "inf_secret_value_123"
    traffic = Traffic("http://t", [key], RULES, Collector([key]), Pacer({}, 60.0),
                      stop_at=time.monotonic() + 60, max_tasks=10)
    problem = {"type": "https://api.inference.sh/errors/rate_limited", "title": "Rate limited", "status": 429,
               "detail": f"echo {key}", "error": {"code": "rate_limited", "message": "x"}}
    headers = {"x-ratelimit-limit": "100", "x-ratelimit-remaining": "0", "x-ratelimit-reset": str(NOW + 30),
               "retry-after": "30", "date": DATE}
    ex = exchange("POST", "/apps/run", 429, problem, headers, "application/problem+json")
    traffic.after(ex, "POST /apps/run")
    findings = traffic.collector.result()
    assert [(f.check, f.severity) for f in findings] == [("CT-RATE-LIMITED", "warning")]
    assert key not in findings[0].model_dump_json()
    assert repro_of(ex).startswith("curl -sS -i -X POST http://t/apps/run -H \"Authorization: Bearer "
                                   "$INFERENCE_API_KEY\"")


def test_collector_counts_repeats() -> None:
    collector = Collector([])
    for _ in range(3):
        collector.add(Issue("CT-PROBLEM", "m", key="k"), "GET /x")
    [finding] = collector.result()
    assert finding.evidence["occurrences"] == 3 and finding.message == "GET /x: m"
