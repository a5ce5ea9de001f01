"""The lifecycle suite's chats: a seeded plan, a clean reference server stays clean (its history
too), agent faults are caught by the lifecycle suite with their AG- checks."""

from __future__ import annotations

import json
from pathlib import Path

from harness.checks.agents import CHECKS as AG_CHECKS
from harness.checks.lifecycle import CHECKS as LC_CHECKS
from harness.checks.lifecycle import check_history
from harness.contract import load_lifecycle, load_limits
from harness.history import read_history
from harness.net.reference import ReferenceServer
from harness.profile import REFERENCE, Profile
from harness.suites.lifecycle.chats import CALCULATIONS, STORY, plan_chats
from harness.suites.lifecycle.run import LifecycleOptions, run_lifecycle
from tests.conftest import TEST_WINDOW, StartServer

LIMITS = load_limits().model_copy(update={"window_seconds": TEST_WINDOW})
# Small task side: these tests are about the chats held beside it.
SMALL = {"tasks": 2, "clients": 2, "deadline_s": 5.0, "chats": 3, "chat_stop_deadline_s": 1.0}


def test_the_plan_is_seeded_and_bounded() -> None:
    plan = plan_chats(11, chats=3, turns=3, budget=100)
    assert plan == plan_chats(11, chats=3, turns=3, budget=100)
    assert [p.turns for p in plan] != [p.turns for p in plan_chats(12, chats=3, turns=3, budget=100)]
    assert [len(p.turns) for p in plan] == [3, 3, 3]
    first = plan[0].turns[0]
    assert first.tool and CALCULATIONS[0] in first.text and first.stop is None  # the docs' example
    assert all(p.turns[0].tool for p in plan)  # every chat starts with a tool round trip
    assert [len(p.turns) for p in plan_chats(11, chats=3, turns=3, budget=4)] == [2, 1, 1]
    assert plan_chats(11, chats=3, turns=3, budget=0) == []
    for seed in range(40):
        turns = [t for p in plan_chats(seed, 2, 3, 100) for t in p.turns]
        assert any(t.stop for t in turns), seed  # AG-STOP always has a stop to judge
        for turn in turns:  # stops only where the run cannot end by itself first
            assert turn.stop is None or turn.tool or turn.text == STORY


def test_clean_server_chats_and_their_history_are_clean(server: ReferenceServer, tmp_path: Path) -> None:
    history = tmp_path / "observations.jsonl"
    result = run_lifecycle(server.url, server.keys, load_lifecycle(), LIMITS, history,
                           LifecycleOptions(seed=7, out_dir=tmp_path, **SMALL))  # type: ignore[arg-type]
    assert result.findings == [], [f.message for f in result.findings]
    assert result.checks == [*LC_CHECKS, *AG_CHECKS] and result.skipped == {}
    metrics = result.metrics
    assert metrics["chats"] == 3 and metrics["chat_turns"] == 9 and metrics["chat_turns_refused"] == 0
    assert metrics["chat_stops"] >= 1 and metrics["chat_tool_posts"] >= 3 and metrics["chat_polls"] > 3
    assert metrics["tasks_created"] == metrics["chat_turns"] + metrics["tasks"]  # every turn is billable
    # Every chat request is in the run's history, apart from the tasks and told apart from them.
    chat_obs = [o for o in read_history(history) if o.channel in ("agent_run", "chat")]
    assert {o.channel for o in chat_obs} == {"agent_run", "chat"}
    assert all(o.task is None and o.conn is None and o.extra.get("chat") for o in chat_obs)
    operations = {o.extra["request"] for o in chat_obs}
    assert {"POST /agents/run", "GET /chats/{id}", "GET /chats/{id}/stream", "POST /chats/{id}/stop",
            "POST /tools/{id}"} <= operations
    assert {o.key for o in chat_obs} == {"key1", "key2"}  # the second key's probes of chat 1
    assert check_history(read_history(history), load_lifecycle()).findings == []
    records = [json.loads(line) for line in
               (tmp_path / "lifecycle" / "conversations.jsonl").read_text().splitlines()]
    assert len(records) == 9 * 2 + 3  # a driver's and a second stream's per turn, a poller per chat
    assert all(key not in history.read_text() for key in server.keys)


def test_agent_faults_are_caught_by_the_lifecycle_suite(start_server: StartServer, tmp_path: Path) -> None:
    faults = ["chat-idle-mid-run", "stop-ignored", "messages-reordered"]
    with start_server(faults=faults, extra_args=["--heartbeat", "0.2"]) as srv:
        result = run_lifecycle(srv.url, srv.keys, load_lifecycle(), LIMITS, tmp_path / "obs.jsonl",
                               LifecycleOptions(seed=7, **SMALL))  # type: ignore[arg-type]
    found = {f.check for f in result.findings}
    assert {"AG-STREAM-END", "AG-STOP", "AG-MESSAGE-ORDER"} <= found, sorted(found)
    assert result.status == "failed"
    assert all(f.suite == "lifecycle" and f.evidence.get("chat_id") for f in result.findings)
    # The second stream and the poller see what the driver sees: not one reader's luck.
    labels = {f.message.split(":")[0] for f in result.findings if f.check == "AG-STREAM-END"}
    assert any("second stream" in label for label in labels), labels
    assert any("polls" in f.message for f in result.findings if f.check == "AG-MESSAGE-ORDER")


def test_without_an_agent_role_the_chat_checks_are_skipped(server: ReferenceServer, tmp_path: Path) -> None:
    profile = Profile(roles={k: v for k, v in REFERENCE.roles.items() if k != "agent"}, builtin=True)
    result = run_lifecycle(server.url, server.keys, load_lifecycle(), LIMITS, tmp_path / "obs.jsonl",
                           LifecycleOptions(seed=7, tasks=1, clients=1, deadline_s=5.0, chats=3,
                                            profile=profile))
    assert result.findings == [] and "chats" not in result.metrics
    assert set(result.skipped) >= set(AG_CHECKS) and not set(result.checks) & set(AG_CHECKS)
    assert "'agent' role" in result.skipped["AG-STOP"]
