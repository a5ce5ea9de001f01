"""The smoke suite: clean on a correct server, and each fault it covers caught by its check."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.checks.lifecycle import check_history
from harness.contract import load_lifecycle, load_limits
from harness.history import read_history
from harness.net.reference import ReferenceServer
from harness.profile import REFERENCE, AppRole, Profile
from harness.suites.smoke.run import CHECKS, SmokeOptions, run_smoke
from tests.conftest import TEST_WINDOW, StartServer

# Which smoke check proves each reference-server fault is caught.
CAUGHT_BY = {
    "status-regression": "ST-POLL-ORDER",
    "float-status": "ST-POLL-ORDER",
    # stream-without-terminal (ST-STREAM-TERMINAL): test_an_answer_that_never_came_is_indeterminate_*
    "events-after-terminal": "ST-STREAM-AFTER-TERMINAL",
    "completed-without-output": "ST-RUN-COMPLETES",
    "invalid-key-accepted": "ST-AUTH-REQUIRED",
    "cross-key-read": "ST-ISOLATION",
    "server-error-on-invalid-input": "ST-INVALID-INPUT",
    "upload-bytes-altered": "ST-UPLOAD-ROUNDTRIP",
    "failed-without-error": "ST-FAIL-ERROR",
    "cancel-ignored": "ST-CANCEL",
    "stream-ignores-accept": "ST-STREAM-FORMAT",
    "ndjson-comment-heartbeat": "ST-STREAM-FORMAT",
    "private-first-to-cloud": "ST-WORKER-PLACEMENT",
    "app-not-found-as-422": "ST-APP-NOT-FOUND",
    "generic-error-titles": "ST-ERROR-TITLE",
    # agent-runs-fail (ST-AGENT-REPLY): test_one_agent_conversation (the agent role alone, faster)
}


def limits_for_tests():  # type: ignore[no-untyped-def]
    return load_limits().model_copy(update={"window_seconds": TEST_WINDOW})


def test_clean_server_has_no_findings(server: ReferenceServer) -> None:
    result = run_smoke(server.url, server.keys, load_lifecycle(), limits_for_tests(),
                       SmokeOptions(deadline_s=30))
    assert result.status == "passed", [f.message for f in result.findings]
    assert result.findings == [] and result.checks == list(CHECKS)
    assert result.metrics["tasks_created"] >= 10


@pytest.mark.parametrize("fault", sorted(CAUGHT_BY))
def test_fault_is_caught(start_server: StartServer, fault: str) -> None:
    with start_server(faults=[fault], extra_args=["--heartbeat", "0.2"]) as srv:
        # An ignored cancel is found by waiting out the deadline: a short one (extra findings of
        # steps it makes late do not matter here, only that the fault's check is among them).
        result = run_smoke(srv.url, srv.keys, load_lifecycle(), limits_for_tests(),
                           SmokeOptions(deadline_s=4 if fault == "cancel-ignored" else 20))
    checks = {f.check for f in result.findings}
    assert CAUGHT_BY[fault] in checks, [f.message for f in result.findings]
    assert result.status == "failed"
    for finding in result.findings:
        assert finding.suite == "smoke" and finding.message and finding.check in CHECKS
        assert srv.keys[0] not in finding.model_dump_json()


def test_isolation_is_skipped_with_one_key(server: ReferenceServer) -> None:
    result = run_smoke(server.url, server.keys[:1], load_lifecycle(), limits_for_tests(),
                       SmokeOptions(deadline_s=30))
    assert "ST-ISOLATION" not in result.checks and result.findings == []


def test_placement_is_judged_for_a_role_with_infra_and_skipped_without(server: ReferenceServer) -> None:
    # The fault is caught on the reference apps by test_fault_is_caught[private-first-to-cloud].
    echo = {"app": "infsh/echo", "input": {"message": "hi"}}
    bare = run_smoke(server.url, server.keys, load_lifecycle(), limits_for_tests(),
                     SmokeOptions(deadline_s=20, profile=Profile(roles={"quick": AppRole(**echo)})))
    assert "ST-WORKER-PLACEMENT" not in bare.checks
    assert "no role of the profile sets infra or workers" in bare.skipped["ST-WORKER-PLACEMENT"]
    placed = Profile(roles={"quick": AppRole(**echo, infra="private_first")})
    good = run_smoke(server.url, server.keys, load_lifecycle(), limits_for_tests(),
                     SmokeOptions(deadline_s=20, profile=placed))
    assert "ST-WORKER-PLACEMENT" in good.checks and good.findings == [], [f.message for f in good.findings]


def test_an_answer_that_never_came_is_indeterminate_not_a_crash(start_server: StartServer,
                                                                 tmp_path: Path) -> None:
    # unanswered-reads holds every 5th task read, unanswered-streams every 2nd stream's head (the
    # SSE step's), until the client leaves: the steps they stop are counted as indeterminate, and
    # nothing is judged wrong for it. stream-without-terminal closes the NDJSON stream (a head
    # came) before its terminal update: that stays a finding. (This is also the proof of
    # stream-without-terminal: ST-STREAM-TERMINAL.)
    history = tmp_path / "observations.jsonl"
    faults = ["unanswered-reads", "unanswered-streams", "stream-without-terminal"]
    with start_server(faults=faults, extra_args=["--heartbeat", "0.2"]) as srv:
        result = run_smoke(srv.url, srv.keys, load_lifecycle(), limits_for_tests(),
                           SmokeOptions(deadline_s=2, request_timeout_s=0.3, history=history))
    found = [(f.check, f.message) for f in result.findings]
    assert [check for check, _ in found] == ["ST-STREAM-TERMINAL"], found
    assert found[0][1].startswith("ndjson stream closed"), found
    held = result.metrics["indeterminate_requests"]
    assert len(held) == min(10, result.metrics["indeterminate"]) and len(held) >= 2
    streams = [r for r in held if r["request"].endswith("/stream")]
    assert [(r["step"], r["error"]) for r in streams] == [("stream sse", "ReadTimeout")]
    assert all(r["request"].startswith("GET /tasks/") for r in held)
    for check, why in result.skipped.items():  # a check left undecided says why, never passes
        assert check not in result.checks and why
    # The stream checks were judged on the NDJSON stream: not left undecided by the SSE one.
    assert {"ST-STREAM-TERMINAL", "ST-STREAM-FORMAT"} <= set(result.checks)
    observed = [o for o in read_history(history) if o.extra["request"].endswith("/stream")
                and o.channel != "chat"]  # the task streams (the agent's chat stream answered)
    assert sorted(o.outcome for o in observed) == ["ok", "timeout"]


def test_every_request_goes_to_the_history(server: ReferenceServer, tmp_path: Path) -> None:
    history = tmp_path / "observations.jsonl"
    result = run_smoke(server.url, server.keys, load_lifecycle(), limits_for_tests(),
                       SmokeOptions(deadline_s=30, history=history))
    assert result.findings == []
    observations = list(read_history(history))
    assert len(observations) >= result.metrics["requests"]
    assert {o.observer for o in observations} == {"smoke"} and all(o.task is None for o in observations)
    assert {"run", "get", "ndjson", "sse", "cancel", "files", "upload", "download"} <= {
        o.channel for o in observations}
    assert {o.key for o in observations} == {"key1", "key2", None}  # None: the unknown key
    text = history.read_text()
    assert not any(key in text for key in server.keys)
    assert check_history(observations, load_lifecycle()).findings == []


@pytest.mark.parametrize("fault", [None, "agent-runs-fail"])
def test_one_agent_conversation(start_server: StartServer, fault: str | None, tmp_path: Path) -> None:
    # The agent role alone: auth, unknown app and the one conversation (ST-AGENT-REPLY).
    agent_only = Profile(roles={"agent": REFERENCE.roles["agent"]})
    history = tmp_path / "observations.jsonl"
    with start_server(faults=[fault] if fault else []) as srv:
        result = run_smoke(srv.url, srv.keys, load_lifecycle(), limits_for_tests(),
                           SmokeOptions(deadline_s=20, profile=agent_only, history=history))
    assert "ST-AGENT-REPLY" in result.checks and "ST-AGENT-REPLY" not in result.skipped
    replies = [f for f in result.findings if f.check == "ST-AGENT-REPLY"]
    if fault is None:
        assert result.findings == [], [f.message for f in result.findings]
    else:
        assert len(replies) == 1 and "ended 'failed'" in replies[0].message, replies
        assert "the model is unavailable" in replies[0].message and replies[0].repro
    chat = [o for o in read_history(history) if o.channel in ("agent_run", "chat")]
    assert {o.extra["request"] for o in chat} >= {"POST /agents/run", "GET /chats/{id}/stream",
                                                  "GET /chats/{id}"}
    assert not any(key in history.read_text() for key in srv.keys)


def test_without_an_agent_role_the_reply_check_is_skipped(server: ReferenceServer) -> None:
    quick_only = Profile(roles={"quick": REFERENCE.roles["quick"]})
    result = run_smoke(server.url, server.keys, load_lifecycle(), limits_for_tests(),
                       SmokeOptions(deadline_s=20, profile=quick_only))
    assert "'agent' app" in result.skipped["ST-AGENT-REPLY"] and "ST-AGENT-REPLY" not in result.checks
