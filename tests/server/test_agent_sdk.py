"""The official Python Agent SDK (`inferencesh==0.36.0`), unchanged, against the reference server.

The docs' calculator example through `client.agent(config)` (the docs' `Agent(api_key=...,
config=...)` does not exist in 0.36.0: contracts/README.md), multi-turn memory, token deltas,
stop, failures, approvals, attachments and isolation, with the sync and the async agent.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from inferencesh import AsyncInference, Inference, string, tool
from inferencesh.agent import AgentDelta, ToolCallInfo, pending_approvals

from harness.net.reference import ReferenceServer
from harness.server.agent_model import evaluate
from tests.server.polling import wait_until

CALCULATOR = tool("calculator").describe("Do math").param("expression", string("Math expression")).build()
DOCS_CONFIG: dict[str, Any] = {
    "core_app_ref": "infsh/claude-sonnet-4@latest",
    "system_prompt": "You help with math.",
    "tools": [CALCULATOR],
}


def texts(chat: dict[str, Any], role: str = "assistant") -> list[str]:
    return [m["content"][0]["text"] for m in chat["chat_messages"] if m["role"] == role]


@pytest.fixture
def sdk(server: ReferenceServer) -> Inference:
    return Inference(api_key=server.keys[0], base_url=server.url)


def test_docs_calculator_example_with_a_client_tool(sdk: Inference) -> None:
    agent = sdk.agent(DOCS_CONFIG)
    calls: list[ToolCallInfo] = []

    def on_tool_call(call: ToolCallInfo) -> None:
        calls.append(call)
        agent.submit_tool_result(call.id, evaluate(call.args["expression"]))

    sent = agent.send_message("What is 42 * 17?", on_tool_call=on_tool_call)
    # The SDK returns the assistant message as POST /agents/run answered it: still pending.
    assert sent["role"] == "assistant" and sent["chat_id"] == agent.chat_id
    assert [(c.name, c.args) for c in calls] == [("calculator", {"expression": "42 * 17"})]
    chat = agent.get_chat()
    assert chat is not None and chat["status"] == "idle"
    assert chat["active_run"]["state"] == "completed"
    assert "714" in texts(chat)[-1]
    invocations = [i for m in chat["chat_messages"] for i in m["tool_invocations"]]
    assert [(i["type"], i["status"], i["result"]) for i in invocations] == [("client", "completed", "714")]


def test_multi_turn_memory_in_one_chat(sdk: Inference) -> None:
    agent = sdk.agent({"core_app": {"ref": "infsh/claude-sonnet-4@abc123"}})
    seen: list[str] = []
    agent.send_message("Hello, my name is Ada", on_message=lambda m: seen.append(m["id"]))
    first_chat = agent.chat_id
    agent.send_message("What is my name?", on_message=lambda m: seen.append(m["id"]))
    assert agent.chat_id == first_chat
    chat = agent.get_chat()
    assert chat is not None
    assert texts(chat) == ["Nice to meet you, Ada.", "Your name is Ada."]
    assert [m["order"] for m in chat["chat_messages"]] == [0, 1, 2, 3]


def test_deltas_add_up_to_the_final_message(sdk: Inference) -> None:
    agent = sdk.agent(DOCS_CONFIG)
    latest: dict[str, str] = {}
    seqs: dict[str, list[int]] = {}

    def on_delta(delta: AgentDelta) -> None:
        latest[delta.message_id] = delta.output["response"]
        seqs.setdefault(delta.message_id, []).append(delta.seq)

    words = " ".join(f"w{i}" for i in range(30))
    agent.send_message(f"Please repeat {words}", on_delta=on_delta)
    chat = agent.get_chat()
    assert chat is not None
    final = {m["id"]: m["content"][0]["text"] for m in chat["chat_messages"]}
    assert latest, "no delta reached on_delta"
    for message_id, text in latest.items():
        assert text == final[message_id]
        assert seqs[message_id] == sorted(set(seqs[message_id]))


def test_stop_ends_a_working_run(sdk: Inference) -> None:
    agent = sdk.agent(DOCS_CONFIG)
    stopped: list[float] = []

    def on_delta(_delta: AgentDelta) -> None:
        if not stopped:
            stopped.append(time.monotonic())
            agent.stop_chat()

    agent.send_message("Tell me a long story", on_delta=on_delta)
    ended = time.monotonic()
    chat = agent.get_chat()
    assert chat is not None and stopped
    assert chat["active_run"]["state"] == "canceled" and chat["status"] == "idle"
    assert chat["chat_messages"][-1]["status"] == "cancelled"
    assert "The end." not in texts(chat)[-1]
    assert ended - stopped[0] < 2.0


def test_a_failing_run_is_failed(sdk: Inference) -> None:
    agent = sdk.agent(DOCS_CONFIG)
    agent.send_message("Please fail now", on_message=lambda _m: None)
    chat = agent.get_chat()
    assert chat is not None
    assert chat["active_run"]["state"] == "failed" and chat["active_run"]["error"]
    assert chat["chat_messages"][-1]["status"] == "failed"


def test_approval_then_the_answer(sdk: Inference) -> None:
    agent = sdk.agent("infsh/careful-math-assistant@latest")
    agent.send_message("What is 6 * 7?", on_message=lambda _m: None)
    # The Python SDK stops streaming at the run's input_required: a person must decide.
    chat = agent.get_chat()
    assert chat is not None and chat["active_run"]["state"] == "input_required"
    approvals = pending_approvals(chat)
    assert [(a.tool_name, a.arguments) for a in approvals] == [("calculator", {"expression": "6 * 7"})]
    agent.approve_tool(approvals[0].tool_invocation_id)
    agent.stream_all()
    chat = agent.get_chat()
    assert chat is not None and chat["active_run"]["state"] == "completed"
    assert texts(chat)[-1] == "6 * 7 = 42."


def test_rejection_then_the_answer(sdk: Inference) -> None:
    agent = sdk.agent("infsh/careful-math-assistant@latest")
    agent.send_message("What is 6 * 7?", on_message=lambda _m: None)
    chat = agent.get_chat()
    approvals = pending_approvals(chat)
    agent.reject_tool(approvals[0].tool_invocation_id, "not now")
    agent.stream_all()
    chat = agent.get_chat()
    assert chat is not None
    assert texts(chat)[-1] == "I did not run calculator: the call was rejected (not now)."


def test_attachments_go_through_post_files(sdk: Inference) -> None:
    agent = sdk.agent(DOCS_CONFIG)
    agent.send_message("Here is a file", files=["data:text/plain;base64,aGVsbG8="],
                       on_message=lambda _m: None)
    chat = agent.get_chat()
    assert chat is not None
    assert texts(chat)[-1].startswith("I received 1 attachment(s):")
    user = chat["chat_messages"][0]
    assert user["content"][1]["type"] == "file" and user["content"][1]["file"].startswith("http")


def test_another_key_cannot_reach_the_chat(sdk: Inference, server: ReferenceServer) -> None:
    agent = sdk.agent(DOCS_CONFIG)
    agent.send_message("hello", on_message=lambda _m: None)
    other = Inference(api_key=server.keys[1], base_url=server.url).agent(DOCS_CONFIG)
    with pytest.raises(RuntimeError, match="not found"):
        other.get_chat(agent.chat_id)


def test_async_agent_calculator_and_errors(server: ReferenceServer) -> None:
    async def scenario() -> tuple[dict[str, Any] | None, str]:
        client = AsyncInference(api_key=server.keys[0], base_url=server.url)
        agent = client.agent(DOCS_CONFIG)

        async def on_tool_call(call: ToolCallInfo) -> None:
            await agent.submit_tool_result(call.id, evaluate(call.args["expression"]))

        await agent.send_message("What is 42 * 17?", on_tool_call=on_tool_call)
        chat = await agent.get_chat()
        # Errors are application/json: the async Agent reads their message (WIRE.md 13).
        with pytest.raises(RuntimeError) as caught:
            await agent.get_chat("chat_unknown")
        return chat, str(caught.value)

    chat, error = asyncio.run(scenario())
    assert chat is not None and "714" in texts(chat)[-1]
    assert "not found" in error


def test_send_while_busy_is_refused(sdk: Inference) -> None:
    agent = sdk.agent(DOCS_CONFIG)
    agent.send_message("Tell me a long story")
    with pytest.raises(RuntimeError, match="still answering"):
        agent.send_message("hello?")
    agent.stop_chat()
    wait_until(lambda: (agent.get_chat() or {}).get("status") == "idle", "the stopped chat idle", 5.0)


def test_the_docs_agent_constructor_does_not_exist_in_the_sdk() -> None:
    """Drift recorded in contracts/README.md: the docs' `Agent(api_key=..., config=...)`."""
    from inferencesh import Agent

    with pytest.raises(TypeError):
        Agent(api_key="inf_docs_example", config=DOCS_CONFIG)  # type: ignore[call-arg]
