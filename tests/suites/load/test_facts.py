"""The Observation fields the load users derive from an answer (sans-I/O, no Locust)."""

from __future__ import annotations

import json
from collections.abc import Callable

from harness.suites.load.facts import NO_DIGEST, Digest, limit_facts, status_fields, task_fields

PROBLEM = json.dumps({"type": "https://x.test/errors/rate_limited", "title": "Too Many Requests",
                      "status": 429, "detail": "slow down"}).encode()


def _lookup(headers: dict[str, str]) -> Callable[[str], str | None]:
    lowered = {k.lower(): v for k, v in headers.items()}
    return lowered.get


def test_remaining_alone_outside_the_limit_scenarios() -> None:
    header = _lookup({"X-RateLimit-Remaining": "7", "X-RateLimit-Limit": "10"})
    assert limit_facts(header, "get", 200, b"", full=False) == {"rl_group": "get", "rl_remaining": 7}
    assert limit_facts(_lookup({}), "get", 200, b"", full=False) == {}


def test_every_header_in_the_limit_scenarios_and_on_a_429() -> None:
    header = _lookup({"X-RateLimit-Remaining": "0", "X-RateLimit-Limit": "10",
                      "X-RateLimit-Reset": "1700000000", "Retry-After": "soon",
                      "Content-Type": "application/problem+json"})
    assert limit_facts(header, "run", 429, PROBLEM, full=True) == {
        "rl_group": "run", "rl_remaining": 0, "rl_limit": 10, "rl_reset": 1700000000,
        "retry_after_raw": "soon"}
    assert limit_facts(_lookup({}), "run", 429, PROBLEM, full=True) == {"rl_group": "run",
                                                                        "rl_missing": True}


def test_a_superscript_remaining_is_raw_not_an_error() -> None:
    facts = limit_facts(_lookup({"X-RateLimit-Remaining": "\u00b2"}), "get", 200, b"", full=False)
    assert facts == {"rl_group": "get", "rl_remaining_raw": "\u00b2"}


def test_the_429_body_is_judged_by_the_rate_limit_suites_rule() -> None:
    def facts(content_type: str, body: bytes) -> dict[str, object]:
        header = _lookup({"X-RateLimit-Remaining": "0", "Content-Type": content_type})
        return limit_facts(header, "upload", 429, body, full=True)

    assert "rl_problem" not in facts("application/problem+json", PROBLEM)
    assert facts("text/plain", PROBLEM)["rl_problem"] is False
    # The legacy `error` object alone is no longer enough (the suite wants type/title/status/detail).
    legacy = json.dumps({"error": {"code": "rate_limited", "message": "m"}}).encode()
    assert facts("application/json", legacy)["rl_problem"] is False


def test_task_and_status_fields() -> None:
    task = {"status": 10, "output": {"x": 1}, "error": None, "updated_at": "u",
            "events": [{"status": 1}, {"status": 10}, {"status": "x"}]}
    assert task_fields(task) == Digest(10, True, False, "u", [1, 10])
    assert task_fields([1, 2]) == NO_DIGEST
    assert status_fields({"status": 3}) == Digest(3)
    assert status_fields(None) is NO_DIGEST


def test_a_worker_judges_the_masters_plan_by_its_own_settings() -> None:
    from harness.suites.load.config import LoadConfig

    own = LoadConfig(allow_hosts=["staging.example.com"])
    # The master allows a host this worker does not: refused, and the plan keeps the worker's list.
    plan, refusal = LoadConfig(base_url="https://prod.example.com", allow_hosts=["prod.example.com"]
                               ).as_worker_of_this_machine(own)
    assert refusal is not None and "prod.example.com is not loopback and not allowed" in refusal
    assert plan.allow_hosts == ["staging.example.com"]
    plan, refusal = LoadConfig(base_url="https://staging.example.com").as_worker_of_this_machine(own)
    assert refusal is None
    _, refusal = LoadConfig(base_url="http://127.0.0.1:8000", insecure=True).as_worker_of_this_machine(own)
    assert refusal is not None and "without verification" in refusal
    plan, refusal = LoadConfig(base_url="http://127.0.0.1:8000", ca_bundle="/master/ca.pem",
                               file_hosts=["evil.example"]).as_worker_of_this_machine(own)
    assert refusal is None and plan.ca_bundle is None and plan.file_hosts == []
