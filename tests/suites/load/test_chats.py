"""A chat turn as the agent_chat users read it (sans-I/O): events in, latencies and errors out."""

from __future__ import annotations

from typing import Any

import pytest

from harness.net.decoders import StreamEvent
from harness.suites.load.chats import ChatTurn, calculator_result, mentions
from harness.suites.load.metrics import PhaseMetrics

MS = 1_000_000


def _event(name: str, data: dict[str, Any]) -> StreamEvent:
    return StreamEvent("update", {"event": name, "data": data}, b"")


def _delta(message: str, seq: int, text: str) -> StreamEvent:
    return _event("delta", {"delta": {"response": text}, "seq": seq, "resource_id": message})


def _message(message: str, status: str, text: str, invocations: list[dict[str, Any]] | None = None
             ) -> dict[str, Any]:
    return {"id": message, "role": "assistant", "status": status, "content": [{"type": "text", "text": text}],
            "tool_invocations": invocations or []}


def _calc(status: str, expression: str = "42 * 17") -> dict[str, Any]:
    return {"id": "tinv_1", "type": "client", "status": status,
            "function": {"name": "calculator", "arguments": {"expression": expression}}}


Turn = tuple[ChatTurn, PhaseMetrics, list[tuple[str, Any]], dict[str, Any]]


def _turn(answer: str, skip: tuple[int, ...] = ()) -> Turn:
    """A tool turn: 'I will use it' (m1), the calculator call, then `answer` (m2) a word a
    delta, the deltas whose seq is in `skip` not sent; and the chat as GET shows it after."""
    metrics, posts = PhaseMetrics(), []
    turn = ChatTurn(metrics, "chat_1", "run_1", 0, lambda inv, result: posts.append((inv, result)) is None)
    waiting = _event("chat_messages", _message("m1", "ready", "I will use it. ", [_calc("awaiting_input")]))
    lines = [(10, _event("agent_runs", {"id": "run_1", "state": "working"})),
             (20, _delta("m1", 1, "I will ")), (25, _delta("m1", 2, "use it. ")),
             (30, waiting), (31, waiting),
             (32, StreamEvent("heartbeat", {"type": "heartbeat"}, b""))]
    words = answer.split(" ")
    lines += [(40 + 5 * i, _delta("m2", i + 1, word + " "))
              for i, word in enumerate(words) if i + 1 not in skip]
    lines += [(90, _event("agent_runs", {"id": "run_0", "state": "completed"})),  # another run's end
              (100, _event("agent_runs", {"id": "run_1", "state": "completed"})),
              (101, _event("chats", {"active_run": {"id": "run_1", "state": "completed"}}))]
    for at, event in lines:
        turn.event(event, at * MS)
    turn.result.closed = True
    chat = {"chat_messages": [{"id": "u1", "role": "user", "status": "ready", "content": []},
                              _message("m1", "ready", "I will use it. ", [_calc("completed")]),
                              _message("m2", "ready", answer + " ")]}
    return turn, metrics, posts, chat


def test_a_clean_tool_turn_records_the_agent_latencies_and_posts_the_result_once() -> None:
    turn, metrics, posts, chat = _turn("42 * 17 = 714.")
    assert posts == [("tinv_1", "714")]
    assert turn.stream_failure() is None
    turn.judge(chat)
    assert metrics.errors == {} and metrics.counts == {"tool_roundtrips": 1}
    got = {name: (s["count"], s["max"]) for name, s in metrics.hdr.summaries().items()}
    # Gaps within a message only: m1 has one, m2 four; the tool's wait between them is none.
    assert got == {"agent.first_delta": (1, pytest.approx(20.0, rel=1e-3)),
                   "agent.delta_gap": (5, pytest.approx(5.0, rel=1e-3)),
                   "agent.turn": (1, pytest.approx(100.0, rel=1e-3))}


def test_a_skipped_delta_and_an_answer_without_the_result_are_errors() -> None:
    turn, metrics, _, chat = _turn("42 * 17 = 714.", skip=(3,))  # seq 3 never came
    turn.judge(chat)
    assert metrics.reasons == {"chat_stream: delta seq not consecutive": 1}
    turn, metrics, _, chat = _turn("I could not compute")
    turn.judge(chat)
    assert metrics.reasons == {"get_chat: the answer after the calculator's result lacks 714": 1}
    chat["chat_messages"][1]["tool_invocations"] = [_calc("awaiting_input")]
    chat["chat_messages"][-1]["status"] = "failed"
    turn.metrics.reasons.clear()
    turn.judge(chat)
    assert set(metrics.reasons) == {
        "tool_result: a posted tool result did not complete its invocation",
        "get_chat: the chat's last message is not a ready answer once its run ended"}


def test_a_stream_that_closes_before_the_run_ended_is_an_error() -> None:
    metrics = PhaseMetrics()
    turn = ChatTurn(metrics, "chat_1", None, 0, lambda inv, result: True)
    turn.event(_event("chats", {"active_run": {"id": "run_9", "state": "input_required"}}), MS)
    turn.result.closed = True
    assert turn.stream_failure() == "chat stream closed before the run ended"
    assert metrics.errors == {"chat_stream": 1} and turn.ended_ns == 0


def test_the_calculator_answers_only_the_question_asked() -> None:
    assert calculator_result({"expression": "42 * 17"}) == "714"
    assert calculator_result({"expression": " (17x42) "}) == "714"
    assert calculator_result({"expression": "2 + 2"}) is None and calculator_result("42*17") is None
    assert mentions("The product is 714.", "714") and mentions("It is 1,234", "1234")
    assert not mentions("It is 71 4", "714")
