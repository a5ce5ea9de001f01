"""AG- rules on hand-made conversation records (no server): the edges the suite rarely meets."""

from __future__ import annotations

from typing import Any

from harness.checks.agents import ChatEvent, Conversation, ToolPost, check_conversation
from harness.contract import load_chat_lifecycle

CHATS = load_chat_lifecycle()


def chats_event(at: float, state: str | None, interrupts: list[dict[str, Any]] | None = None) -> ChatEvent:
    run = None if state is None else {"id": "run_1", "state": state}
    return ChatEvent(at, "chats", {"id": "chat_1", "active_run": run, "pending_interrupts": interrupts or []})


def message(at: float, status: str) -> ChatEvent:
    return ChatEvent(at, "chat_messages", {"id": "msg_1", "agent_run_id": "run_1", "order": 0,
                                           "status": status, "role": "assistant", "content": []})


def checks(conv: Conversation, deadline: float = 10.0) -> set[str]:
    return {issue.check for issue in check_conversation(conv, CHATS, deadline)}


def test_an_approval_wait_is_not_a_premature_end() -> None:
    interrupt = {"id": "i", "reason": "tool_approval", "status": "pending"}
    waiting = chats_event(0.2, "input_required", [interrupt])
    conv = Conversation("c", "chat_1", [chats_event(0.1, "working"), waiting, chats_event(0.5, "working"),
                                        message(0.6, "ready"), chats_event(0.7, "completed")],
                        closed_by_server=True)
    assert checks(conv) == set()


def test_a_missing_active_run_mid_run_is_premature() -> None:
    conv = Conversation("c", "chat_1", [chats_event(0.1, "working"), chats_event(0.2, None),
                                        message(0.3, "ready"), chats_event(0.4, "completed")],
                        closed_by_server=True)
    assert checks(conv) == {"AG-STREAM-END"}


def test_a_stream_closed_while_working_and_one_left_open() -> None:
    working = Conversation("c", "chat_1", [chats_event(0.1, "working")], closed_by_server=True)
    open_after_end = Conversation("c", "chat_1", [chats_event(0.1, "completed")], closed_by_server=False)
    assert checks(working) == {"AG-STREAM-END"} and checks(open_after_end) == {"AG-STREAM-END"}


def test_a_late_stop() -> None:
    conv = Conversation("c", "chat_1", [chats_event(0.1, "working"), chats_event(12.5, "canceled")],
                        closed_by_server=True, stop_at=0.2, state_at_stop="working")
    assert checks(conv, deadline=10.0) == {"AG-STOP"}
    assert checks(conv, deadline=20.0) == set()


def test_an_answer_with_a_thousands_separator_uses_the_result() -> None:
    invocation = {"id": "t1", "type": "client", "status": "completed", "result": "5555",
                  "function": {"name": "calculator", "arguments": {}}}
    asked = {"id": "m1", "agent_run_id": "run_1", "order": 1, "role": "assistant", "status": "ready",
             "content": [{"type": "text", "text": ""}], "tool_invocations": [invocation]}
    answer = {"id": "m2", "agent_run_id": "run_1", "order": 2, "role": "assistant", "status": "ready",
              "content": [{"type": "text", "text": "1234 + 4321 = 5,555."}], "tool_invocations": []}
    conv = Conversation("c", "chat_1", [], closed_by_server=True, expect_in_answer="5555",
                        final_chat={"id": "chat_1", "chat_messages": [asked, answer]})
    conv.posts.append(ToolPost("t1", "5555", 0.0, 200))
    assert checks(conv) == set()
    answer["content"] = [{"type": "text", "text": "It is 5,556."}]
    assert checks(conv) == {"AG-TOOL-ROUNDTRIP"}
