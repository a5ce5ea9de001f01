"""The reference server's agent endpoints on the wire: envelope, errors, groups, stream, isolation."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from harness.net.reference import ReferenceServer
from harness.server.agent_model import NotArithmetic, evaluate, tokens
from tests.server.polling import wait_until

DOCS_AGENT = {"core_app_ref": "infsh/claude-sonnet-4@latest", "system_prompt": "You help with math.",
              "tools": [{"name": "calculator", "type": "client", "client": {"input_schema": {}}}]}


def http(server: ReferenceServer, key: int = 0) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=10.0,
                        headers={"Authorization": f"Bearer {server.keys[key]}"})


def run(api: httpx.Client, text: str, **extra: Any) -> httpx.Response:
    return api.post("/agents/run", json={"chat_id": None, "input": {"text": text},
                                         "agent_config": DOCS_AGENT, **extra})


def stream_events(api: httpx.Client, chat_id: str) -> list[dict[str, Any]]:
    with api.stream("GET", f"/chats/{chat_id}/stream") as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/x-ndjson"
        return [json.loads(line) for line in response.iter_lines() if line]


def awaiting_tool(api: httpx.Client, chat_id: str) -> str:
    def find() -> str | None:
        chat = api.get(f"/chats/{chat_id}").json()["data"]
        return next((i["id"] for m in chat["chat_messages"] for i in m["tool_invocations"]
                     if i["status"] == "awaiting_input"), None)
    return wait_until(find, "a tool call awaiting input", 5.0)


def test_run_answers_both_messages_in_the_envelope_under_the_run_group(server: ReferenceServer) -> None:
    with http(server) as api:
        answer = run(api, "hello")
    assert answer.status_code == 200 and answer.headers["X-RateLimit-Limit"] == "100"
    body = answer.json()
    assert body["success"] is True and body["messages"] == []
    user, assistant = body["data"]["user_message"], body["data"]["assistant_message"]
    assert (user["role"], user["status"], assistant["role"], assistant["status"]) == \
        ("user", "ready", "assistant", "pending")
    assert user["chat_id"] == assistant["chat_id"] and assistant["order"] == 1


def test_stream_snapshot_events_and_close(server: ReferenceServer) -> None:
    with http(server) as api:
        chat_id = run(api, "What is 2 + 3?").json()["data"]["assistant_message"]["chat_id"]
        invocation = awaiting_tool(api, chat_id)
        assert api.post(f"/tools/{invocation}", json={"result": "5"}).status_code == 200
        again = api.post(f"/tools/{invocation}", json={"result": "5"})
        events = stream_events(api, chat_id)
    assert again.status_code == 409 and again.headers["content-type"] == "application/json"
    assert again.json()["error"]["code"] == "invalid_transition"
    kinds = [e.get("event") for e in events if "type" not in e]
    assert kinds[-1] == "chats" and events[-1]["data"]["active_run"]["state"] == "completed"
    final = [e["data"] for e in events if e.get("event") == "chat_messages"]
    assert final[-1]["content"][0]["text"] == "2 + 3 = 5."
    for delta in (e["data"] for e in events if e.get("event") == "delta"):
        assert delta["resource_id"] and delta["seq"] >= 1


def test_refusals(server: ReferenceServer) -> None:
    with http(server) as api:
        empty = run(api, "  ")
        both = run(api, "hi", agent="infsh/assistant@latest")
        unknown_model = api.post("/agents/run", json={"input": {"text": "hi"},
                                                      "agent_config": {"core_app": {"ref": "x/y"}}})
        unknown_agent = api.post("/agents/run", json={"input": {"text": "hi"}, "agent": "infsh/nope"})
        stranger_file = api.post("/agents/run", json={
            "input": {"text": "hi", "attachments": [{"uri": f"{server.url}/files/f_1/a.txt"}]},
            "agent": "infsh/assistant"})
        unknown_chat = run(api, "hi", chat_id="chat_unknown")
        no_key = httpx.post(f"{server.url}/agents/run", json={"input": {"text": "hi"}})
    assert [r.status_code for r in (empty, both, unknown_model, unknown_agent, stranger_file,
                                    unknown_chat, no_key)] == [422, 422, 404, 404, 422, 404, 401]
    for response in (empty, unknown_model, unknown_chat, no_key):
        assert response.headers["content-type"] == "application/json"
        assert response.json()["error"]["message"] == response.json()["detail"]


def test_another_key_gets_404_everywhere(server: ReferenceServer) -> None:
    with http(server) as api, http(server, 1) as other:
        chat_id = run(api, "What is 1 + 1?").json()["data"]["assistant_message"]["chat_id"]
        invocation = awaiting_tool(api, chat_id)
        probes = [other.get(f"/chats/{chat_id}"), other.get(f"/chats/{chat_id}/stream"),
                  other.post(f"/chats/{chat_id}/stop"), other.post(f"/tools/{invocation}",
                                                                   json={"result": "3"}),
                  run(other, "hi", chat_id=chat_id)]
        assert api.post(f"/chats/{chat_id}/stop").status_code == 200
        # The run ends at its next step, not inside the stop's answer (AG-STOP allows 10 s).
        def ended() -> dict[str, Any] | None:
            chat: dict[str, Any] = api.get(f"/chats/{chat_id}").json()["data"]
            return chat if chat["active_run"]["state"] != "working" else None

        chat = wait_until(ended, "the stopped run ended")
    assert [p.status_code for p in probes] == [404] * 5
    assert chat["active_run"]["state"] == "canceled"
    assert chat["chat_messages"][1]["tool_invocations"][0]["status"] == "cancelled"


def test_server_side_tool_and_template_agent(server: ReferenceServer) -> None:
    with http(server) as api:
        chat_id = api.post("/agents/run", json={"input": {"text": "What is (3 + 4) * 6?"},
                                                "agent": "infsh/math-assistant@latest"}
                           ).json()["data"]["user_message"]["chat_id"]
        events = stream_events(api, chat_id)
    messages = {e["data"]["id"]: e["data"] for e in events if e.get("event") == "chat_messages"}
    invocations = [i for m in messages.values() for i in m["tool_invocations"]]
    assert [(i["type"], i["status"], i["result"]) for i in invocations][-1] == ("internal", "completed", "42")
    assert list(messages.values())[-1]["content"][0]["text"] == "(3 + 4) * 6 = 42."


def test_arithmetic_is_evaluated_safely() -> None:
    assert evaluate("42 * 17") == "714" and evaluate("7 / 2") == "3.5" and evaluate("-2 ** 3") == "-8"
    for bad in ("__import__('os')", "9 ** 9999", "1 / 0", "x + 1", "[1] * 3"):
        with pytest.raises(NotArithmetic):
            evaluate(bad)
    assert "".join(tokens("You said: a  b ")) == "You said: a  b "


def test_ended_chats_are_evicted_after_the_retention_and_past_the_cap() -> None:
    import asyncio

    from harness.server.agents import AgentRuntime, Turn
    from harness.server.faults import Faults

    async def scenario() -> tuple[int, int, int]:
        runtime = AgentRuntime(1000.0, Faults(), lambda v: json.dumps(v).encode(),
                               retention_seconds=60.0, max_chats=2)
        chats = [runtime.new_chat("k", "a", "infsh/claude-sonnet-4", "", {}, {}) for _ in range(3)]
        runtime.send(chats[0], Turn("hello", [], ()))  # an active run is never evicted
        dropped_by_cap = runtime.evict()
        await asyncio.wait_for(_until_idle(runtime, chats[0]), 5.0)
        dropped_by_age = runtime.evict(now=chats[0].updated + 61.0)
        return dropped_by_cap, dropped_by_age, len(runtime.chats)

    async def _until_idle(runtime: AgentRuntime, chat: Any) -> None:
        while chat.run.active:
            await asyncio.sleep(0.005)

    assert asyncio.run(scenario()) == (1, 2, 0)


@pytest.mark.parametrize("status", ["awaiting_input", "awaiting_approval"])
def test_a_second_answer_before_the_run_wakes_is_refused(status: str) -> None:
    import asyncio

    from harness.server.agent_model import ToolCall, ToolSpec
    from harness.server.agents import AgentError, AgentRuntime, Invocation
    from harness.server.faults import Faults

    async def scenario() -> int:
        runtime = AgentRuntime(1.0, Faults(), lambda v: json.dumps(v).encode())
        chat = runtime.new_chat("k", "a", "infsh/claude-sonnet-4", "", {}, {})
        invocation = Invocation("tinv_1", "msg_1", ToolCall(ToolSpec("calculator", "client"), {}),
                                status)
        answer = ((lambda: runtime.submit_result(chat, invocation, "5")) if status == "awaiting_input"
                  else (lambda: runtime.decide(chat, invocation, True)))
        answer()  # the run has not woken yet, so the status is unchanged
        with pytest.raises(AgentError) as refused:
            answer()
        return refused.value.status

    assert asyncio.run(scenario()) == 409


def test_agent_speed_scales_the_agent_runs_apart_from_the_tasks() -> None:
    from harness.net.reference import fresh_keys, reference_server

    # At --speed 0.1 the agent would think for 10 s before its tool call, past awaiting_tool's 5 s
    # deadline; --agent-speed 1000 makes it a millisecond (the plain schemathesis run relies on it).
    with reference_server(fresh_keys(1), speed=0.1, extra_args=["--agent-speed", "1000"]) as fast:
        with http(fast) as api:
            chat_id = run(api, "What is 2 + 3?").json()["data"]["assistant_message"]["chat_id"]
            assert awaiting_tool(api, chat_id).startswith("tinv_")
