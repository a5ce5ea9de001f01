"""The agents suite: quiet on the clean reference server, each AG- check caught by its fault."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.checks.agents import CHECKS
from harness.checks.lifecycle import check_history
from harness.contract import load_lifecycle
from harness.history import read_history
from harness.net.reference import ReferenceServer
from harness.profile import Profile
from harness.suites.agents.run import AgentsOptions, run_agents
from tests.conftest import StartServer

# Faults that do not disturb each other's checks share a server (three starts instead of eight).
FAULT_GROUPS = {
    ("run-reopened", "messages-reordered", "delta-gap", "chat-cross-key"):
        {"AG-RUN-STATES", "AG-MESSAGE-ORDER", "AG-DELTAS", "AG-ISOLATION"},
    ("tool-result-ignored", "chat-idle-mid-run", "stop-ignored"):
        {"AG-TOOL-ROUNDTRIP", "AG-STREAM-END", "AG-STOP"},
    ("tool-redispatch",): {"AG-TOOL-ONCE"},
}


def test_clean_server_has_no_findings_and_records_the_conversations(server: ReferenceServer,
                                                                    tmp_path: Path) -> None:
    history = tmp_path / "observations.jsonl"
    result = run_agents(server.url, server.keys, AgentsOptions(out_dir=tmp_path, history_path=history))
    assert result.status == "passed", [f.message for f in result.findings]
    # Every request is in the run's history (no task, the operation and the chat named), and the
    # task lifecycle checker finds nothing in it.
    observations = list(read_history(history))
    assert len(observations) == result.metrics["requests"] and result.metrics["indeterminate"] == 0
    assert {o.channel for o in observations} == {"agent_run", "chat"}
    assert all(o.task is None and o.extra["request"] and o.extra.get("chat") for o in observations)
    assert check_history(read_history(history), load_lifecycle()).findings == []
    assert all(key not in history.read_text() for key in server.keys)
    assert result.checks == list(CHECKS) and result.skipped == {}
    assert result.metrics["conversations"] == 4 and result.metrics["tasks_created"] == 4
    lines = (tmp_path / "agents" / "conversations.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    # Three chats at once, each with its own tool result and answer.
    assert [r["posts"][0]["result"] for r in records[:3]] == ["714", "437", "5555"]
    assert len({r["chat_id"] for r in records}) == 4
    tool_round_trip = records[0]
    assert tool_round_trip["foreign"] == {"GET /chats/{id}": 404, "GET /chats/{id}/stream": 404,
                                          "POST /chats/{id}/stop": 404, "POST /tools/{id}": 404}
    assert all(key not in "".join(lines) for key in server.keys)


@pytest.mark.parametrize("faults", list(FAULT_GROUPS), ids=lambda f: "+".join(f))
def test_each_fault_is_caught_by_its_check(start_server: StartServer, faults: tuple[str, ...]) -> None:
    with start_server(faults=list(faults)) as srv:
        result = run_agents(srv.url, srv.keys, AgentsOptions(stop_deadline_s=5.0))
    found = {f.check for f in result.findings}
    assert FAULT_GROUPS[faults] <= found, [f.message for f in result.findings]
    assert all(f.suite == "agents" and f.evidence.get("chat_id") for f in result.findings)


def test_an_unmapped_agent_role_skips_every_check(server: ReferenceServer) -> None:
    result = run_agents(server.url, server.keys, AgentsOptions(profile=Profile(roles={})))
    assert result.status == "skipped" and set(result.skipped) == set(CHECKS)
    assert "'agent' role" in result.skipped["AG-STOP"]


def test_one_key_skips_isolation(server: ReferenceServer) -> None:
    result = run_agents(server.url, server.keys[:1], AgentsOptions())
    assert result.status == "passed" and list(result.skipped) == ["AG-ISOLATION"]
    assert "AG-ISOLATION" not in result.checks
