"""Agent chat rules (AG-), sans-I/O: what a client saw of one conversation in, Issues out.

A `Conversation` is the record the agents suite keeps of one chat: every line of its stream
with the time it arrived, the tool results it posted, the chat as `GET /chats/{id}` showed it
at the end, and, when it stopped the chat or probed it with another key, what came of that.
Times are seconds on one monotonic clock, given by the caller.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from harness.checks.issues import Issue
from harness.contract import ChatLifecycle

CHECKS: dict[str, str] = {
    "AG-RUN-STATES": "an agent run's states follow the chat lifecycle's edges and end once",
    "AG-TOOL-ROUNDTRIP": "a client tool call waits in awaiting_input until its result is posted, then "
                         "completes with it, and the next assistant message uses the result",
    "AG-TOOL-ONCE": "no tool call is dispatched twice (the same call again, or the same invocation "
                    "awaiting input after its result)",
    "AG-MESSAGE-ORDER": "messages keep their ids and order between the stream and GET /chats/{id}",
    "AG-DELTAS": "a message's deltas carry its id, have consecutive seq, and add up to its final text",
    "AG-STREAM-END": "the chat stream shows the run ended only once it has (the Python SDK stops "
                     "there) and closes after the end",
    "AG-STOP": "POST /chats/{id}/stop ends a working run as canceled within the deadline",
    "AG-ISOLATION": "another key cannot read, stream, stop or answer the tools of a chat (404)",
}


@dataclass(frozen=True, slots=True)
class ChatEvent:
    """One line of a chat stream: `event` is chats, chat_messages, agent_runs, delta or heartbeat."""

    at: float
    event: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolPost:
    """A tool result the client posted, and the HTTP status of the answer."""

    invocation_id: str
    result: str
    at: float
    status: int


@dataclass
class Conversation:
    """What a client saw of one chat (see the module docstring)."""

    label: str
    chat_id: str
    events: list[ChatEvent] = field(default_factory=list)
    closed_by_server: bool = False  # False: the client stopped reading at its deadline
    final_chat: dict[str, Any] | None = None
    posts: list[ToolPost] = field(default_factory=list)
    expect_in_answer: str | None = None  # text the answer after a tool call must contain
    stop_at: float | None = None  # when POST /chats/{id}/stop answered 2xx
    state_at_stop: str | None = None  # the run's state the client had seen when it stopped it
    foreign: dict[str, int] = field(default_factory=dict)  # another key's probe -> HTTP status
    start_status: int = 0  # the HTTP status of the POST /agents/run that started the chat


def check_conversation(conv: Conversation, chats: ChatLifecycle,
                       stop_deadline_s: float = 10.0) -> list[Issue]:
    """Every AG- rule that applies to one conversation."""
    issues: list[Issue] = []
    for rule in (_run_states, _tool_roundtrip, _tool_once, _message_order, _deltas, _stream_end):
        issues += rule(conv, chats)
    issues += _stop(conv, chats, stop_deadline_s)
    issues += _isolation(conv)
    return issues


# -- what the record shows --------------------------------------------------------------------


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _messages(data: Any) -> list[dict[str, Any]]:
    items = data.get("chat_messages") if isinstance(data, dict) else None
    return [m for m in items or [] if isinstance(m, dict)]


def _run_of_chat(chat: Any) -> dict[str, Any] | None:
    run = chat.get("active_run") if isinstance(chat, dict) else None
    return run if isinstance(run, dict) else None


def _run_states(conv: Conversation, chats: ChatLifecycle) -> list[Issue]:
    """Per run id: the states seen in order (agent_runs events, the chat's active_run, the end)."""
    seen: dict[str, list[tuple[float, str]]] = {}

    def note(run: dict[str, Any] | None, at: float) -> None:
        if run and isinstance(run.get("id"), str) and isinstance(run.get("state"), str):
            seen.setdefault(run["id"], []).append((at, run["state"]))

    for event in conv.events:
        if event.event == "agent_runs":
            note(event.data, event.at)
        elif event.event == "chats":
            note(_run_of_chat(event.data), event.at)
    note(_run_of_chat(conv.final_chat), float("inf"))
    issues = []
    machine = chats.run
    for run_id, states in seen.items():
        names = [state for _, state in states]
        for before, after in itertools.pairwise(names):
            problem = None
            if after not in machine.states:
                problem = f"state {after!r} is not a run state of the contract"
            elif before in machine.terminal and after != before:
                problem = f"the run ended {before!r}, then showed {after!r}: a run ends once"
            elif not machine.may_follow(before, after):
                problem = f"the run went from {before!r} to {after!r}, an edge the contract does not allow"
            if problem:
                issues.append(Issue("AG-RUN-STATES", f"{conv.label}: {problem}", key=f"{before}->{after}",
                                    evidence={"chat_id": conv.chat_id, "run_id": run_id,
                                              "states_seen": _squeeze(names)}))
                break
    return issues


def _invocations(conv: Conversation) -> Iterator[tuple[float, dict[str, Any], dict[str, Any]]]:
    """(time, message, invocation) of every invocation in the stream, then in the final chat."""
    for event in conv.events:
        if event.event == "chat_messages":
            for inv in event.data.get("tool_invocations") or []:
                if isinstance(inv, dict):
                    yield event.at, event.data, inv
    for message in _messages(conv.final_chat):
        for inv in message.get("tool_invocations") or []:
            if isinstance(inv, dict):
                yield float("inf"), message, inv


def _tool_roundtrip(conv: Conversation, _chats: ChatLifecycle) -> list[Issue]:
    issues: list[Issue] = []
    posted = {p.invocation_id: p for p in conv.posts if 200 <= p.status < 300}
    last: dict[str, dict[str, Any]] = {}
    for at, message, inv in _invocations(conv):
        inv_id = inv.get("id")
        if not isinstance(inv_id, str) or inv.get("type") != "client":
            continue
        last[inv_id] = {**inv, "_message": message}
        post = posted.get(inv_id)
        if inv.get("status") == "completed" and (post is None or at < post.at):
            issues.append(Issue("AG-TOOL-ROUNDTRIP", f"{conv.label}: client tool call {inv_id} is "
                                "completed before its result was posted (it never waited in "
                                "awaiting_input for the client)", key="completed-early",
                                evidence={"chat_id": conv.chat_id, "invocation": inv}))
            return issues
    for inv_id, post in posted.items():
        if inv_id not in last:
            continue
        inv = last[inv_id]
        if inv.get("status") != "completed" or inv.get("result") != post.result:
            issues.append(Issue("AG-TOOL-ROUNDTRIP", f"{conv.label}: after its result was posted, "
                                f"tool call {inv_id} ended {inv.get('status')!r} with result "
                                f"{inv.get('result')!r} instead of completed with {post.result!r}",
                                key="not-completed", evidence={"chat_id": conv.chat_id}))
            continue
        answer = _next_answer(conv.final_chat, inv["_message"])
        wanted = conv.expect_in_answer or post.result
        if answer is None or wanted not in _digits_joined(answer):
            issues.append(Issue("AG-TOOL-ROUNDTRIP", f"{conv.label}: the assistant message after tool "
                                f"call {inv_id} does not use its result {post.result!r} (expected "
                                f"{wanted!r} in it): {answer!r}", key="result-unused",
                                evidence={"chat_id": conv.chat_id, "answer": answer}))
    return issues


def _digits_joined(text: str) -> str:
    """Thousands separators dropped ("5,555" -> "5555"): a real model may write numbers so."""
    return re.sub(r"(?<=\d)[,\u202f\u00a0 ](?=\d{3}\b)", "", text)


def _text(message: dict[str, Any]) -> str:
    parts = message.get("content") or []
    return "".join(p.get("text") or "" for p in parts if isinstance(p, dict) and p.get("type") == "text")


def _next_answer(chat: dict[str, Any] | None, message: dict[str, Any]) -> str | None:
    """The text of the first assistant message after `message` that has text, in the final chat."""
    order = message.get("order")
    for candidate in _messages(chat):
        if candidate.get("role") != "assistant" or not isinstance(order, int):
            continue
        if isinstance(candidate.get("order"), int) and candidate["order"] > order and _text(candidate):
            return _text(candidate)
    return None


def _tool_once(conv: Conversation, _chats: ChatLifecycle) -> list[Issue]:
    issues: list[Issue] = []
    status_of: dict[str, str] = {}
    calls: dict[tuple[Any, str, str], str] = {}
    for _at, message, inv in _invocations(conv):
        inv_id, status = inv.get("id"), inv.get("status")
        if not isinstance(inv_id, str) or not isinstance(status, str):
            continue
        before = status_of.get(inv_id)
        if before in ("completed", "failed", "cancelled") and status in ("awaiting_input", "in_progress"):
            issues.append(Issue("AG-TOOL-ONCE", f"{conv.label}: tool call {inv_id} was {before} and "
                                f"then {status} again: a client would run it twice", key="again",
                                evidence={"chat_id": conv.chat_id}))
        status_of[inv_id] = status
        function = _dict(inv.get("function"))
        call = (message.get("agent_run_id"), str(function.get("name")), _stable(function.get("arguments")))
        first = calls.setdefault(call, inv_id)
        if first != inv_id and status in ("awaiting_input", "in_progress", "completed"):
            issues.append(Issue("AG-TOOL-ONCE", f"{conv.label}: the run dispatched the same tool call "
                                f"{call[1]}({call[2]}) twice, as {first} and {inv_id}: a client "
                                "runs its handler twice", key="duplicate",
                                evidence={"chat_id": conv.chat_id, "run_id": call[0]}))
            calls[call] = inv_id  # report each repeat once
    return issues[:1] if issues else []


def _stable(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}={_stable(value[k])}" for k in sorted(value)) + "}"
    return repr(value)


def _message_order(conv: Conversation, _chats: ChatLifecycle) -> list[Issue]:
    final = _messages(conv.final_chat)
    if not final:
        return []
    orders = [m.get("order") for m in final]
    if any(not isinstance(o, int) for o in orders) or orders != sorted(set(orders)):  # type: ignore[type-var]
        return [Issue("AG-MESSAGE-ORDER", f"{conv.label}: GET /chats/{{id}} lists messages with order "
                      f"{orders}, not strictly increasing", key="get-order",
                      evidence={"chat_id": conv.chat_id, "ids": [m.get("id") for m in final]})]
    streamed: dict[str, Any] = {}
    for event in conv.events:
        if event.event == "chat_messages" and isinstance(event.data.get("id"), str):
            streamed.setdefault(event.data["id"], event.data.get("order"))
    got = {m.get("id"): m.get("order") for m in final}
    for message_id, order in streamed.items():
        if message_id not in got:
            return [Issue("AG-MESSAGE-ORDER", f"{conv.label}: message {message_id} of the stream is "
                          "missing from GET /chats/{id}", key="missing",
                          evidence={"chat_id": conv.chat_id})]
        if got[message_id] != order:
            return [Issue("AG-MESSAGE-ORDER", f"{conv.label}: message {message_id} has order {order} in "
                          f"the stream but {got[message_id]} in GET /chats/{{id}}", key="moved",
                          evidence={"chat_id": conv.chat_id})]
    ids = [i for i in got if i in streamed]
    if ids != [i for i in streamed if i in got]:
        return [Issue("AG-MESSAGE-ORDER", f"{conv.label}: the stream and GET /chats/{{id}} list the "
                      "messages in different orders", key="sequence", evidence={"chat_id": conv.chat_id})]
    return []


def _deltas(conv: Conversation, _chats: ChatLifecycle) -> list[Issue]:
    by_message: dict[str, list[tuple[int, str]]] = {}
    for event in conv.events:
        if event.event != "delta":
            continue
        message_id, seq = event.data.get("resource_id"), event.data.get("seq")
        delta = _dict(event.data.get("delta"))
        if not isinstance(message_id, str) or not message_id:
            return [Issue("AG-DELTAS", f"{conv.label}: a delta without resource_id (the SDKs drop it "
                          "and on_delta never sees that text)", key="no-resource",
                          evidence={"chat_id": conv.chat_id, "delta": event.data})]
        if type(seq) is not int:
            return [Issue("AG-DELTAS", f"{conv.label}: a delta of {message_id} has seq {seq!r}, not an "
                          "integer", key="seq-type", evidence={"chat_id": conv.chat_id})]
        by_message.setdefault(message_id, []).append((seq, str(delta.get("response") or "")))
    final = {m.get("id"): m for m in _messages(conv.final_chat)}
    for message_id, deltas in by_message.items():
        seqs = sorted(seq for seq, _ in deltas)
        merged = "".join(text for _, text in sorted(deltas))
        message = final.get(message_id)
        # Contiguous: the contract's server starts at 1, the SDK type only says "increasing"; a
        # stream that joined late and missed the first deltas fails the text comparison below.
        expected = list(range(seqs[0], seqs[0] + len(seqs)))
        if seqs != expected:
            return [Issue("AG-DELTAS", f"{conv.label}: deltas of message {message_id} have seq "
                          f"{_squeeze_ints(seqs)}, not consecutive (a gap or a repeat)",
                          key="seq", evidence={"chat_id": conv.chat_id, "merged": merged[:400],
                                               "final": _text(message)[:400] if message else None})]
        if message is not None and message.get("status") == "ready" and merged != _text(message):
            return [Issue("AG-DELTAS", f"{conv.label}: the deltas of message {message_id} add up to "
                          f"{merged[:120]!r}, but its final text is {_text(message)[:120]!r}: the SDK's "
                          "on_delta shows other text than the answer", key="text",
                          evidence={"chat_id": conv.chat_id})]
    return []


def _stream_end(conv: Conversation, chats: ChatLifecycle) -> list[Issue]:
    active = set(chats.python_sdk_active_run_states)
    events = [e for e in conv.events if e.event != "heartbeat"]
    for index, event in enumerate(events):
        if event.event != "chats":
            continue
        run = _run_of_chat(event.data)
        state = run.get("state") if run else None
        if state in active:
            continue
        interrupted = state in ("input_required", "auth_required") and event.data.get("pending_interrupts")
        after = [e for e in events[index + 1:] if _same_run(e, run)]
        if after and not interrupted:
            kinds = sorted({e.event for e in after})
            return [Issue("AG-STREAM-END", f"{conv.label}: a `chats` event shows the run "
                          f"{state or 'missing (no active_run)'} while it goes on ({len(after)} more "
                          f"events: {', '.join(kinds)}); the Python SDK's stream_all stops at this event "
                          "and misses the rest, the answer included", key=f"premature:{state}",
                          evidence={"chat_id": conv.chat_id, "at": round(event.at, 3)})]
    last_run = next((_run_of_chat(e.data) for e in reversed(events) if e.event == "chats"), None)
    last_state = last_run.get("state") if last_run else None
    if conv.closed_by_server and last_state in active:
        return [Issue("AG-STREAM-END", f"{conv.label}: the server closed the chat stream while the run "
                      f"was {last_state}: the SDKs end without the answer", key="closed-early",
                      evidence={"chat_id": conv.chat_id})]
    if not conv.closed_by_server and last_state in chats.run.terminal:
        return [Issue("AG-STREAM-END", f"{conv.label}: the chat stream stayed open after the run ended "
                      f"{last_state}", key="not-closed", evidence={"chat_id": conv.chat_id})]
    return []


def _same_run(event: ChatEvent, run: dict[str, Any] | None) -> bool:
    """Whether a later event belongs to the run a `chats` event showed (any, if it showed none)."""
    run_id = run.get("id") if run else None
    if run_id is None:
        return event.event != "chats" or _run_of_chat(event.data) is not None
    if event.event == "agent_runs":
        return bool(event.data.get("id") == run_id)
    if event.event == "chat_messages":
        return bool(event.data.get("agent_run_id") == run_id)
    if event.event == "chats":
        other = _run_of_chat(event.data)
        return other is not None and bool(other.get("id") == run_id)
    return True  # deltas belong to the run being written


def _stop(conv: Conversation, chats: ChatLifecycle, deadline_s: float) -> list[Issue]:
    if conv.stop_at is None or conv.state_at_stop not in ("submitted", "working"):
        return []
    ended: tuple[float, str] | None = None
    for event in conv.events:
        run = event.data if event.event == "agent_runs" else (
            _run_of_chat(event.data) if event.event == "chats" else None)
        if run and run.get("state") in chats.run.terminal and event.at >= conv.stop_at:
            ended = (event.at, str(run["state"]))
            break
    final_run = _run_of_chat(conv.final_chat)
    final_state = final_run.get("state") if final_run else None
    evidence = {"chat_id": conv.chat_id, "state_at_stop": conv.state_at_stop, "final_state": final_state}
    if ended is None:
        if final_state == "canceled":
            return []
        return [Issue("AG-STOP", f"{conv.label}: the run was {conv.state_at_stop} when stop was answered "
                      f"and is {final_state!r}, not canceled, at the end", key="not-ended",
                      evidence=evidence)]
    at, state = ended
    if state != "canceled":
        return [Issue("AG-STOP", f"{conv.label}: stop was answered 2xx but the run went on and ended "
                      f"{state}", key=f"ended-{state}", evidence=evidence)]
    if at - conv.stop_at > deadline_s:
        return [Issue("AG-STOP", f"{conv.label}: the run ended canceled {at - conv.stop_at:.1f} s after the "
                      f"stop, past the {deadline_s:g} s deadline", key="late", evidence=evidence)]
    return []


def _isolation(conv: Conversation) -> list[Issue]:
    leaks = {probe: status for probe, status in conv.foreign.items() if status not in (403, 404)}
    if not leaks:
        return []
    listed = ", ".join(f"{probe}: {status}" for probe, status in sorted(leaks.items()))
    return [Issue("AG-ISOLATION", f"{conv.label}: another key's requests on this chat were not refused "
                  f"with 404 ({listed})", key="leak", evidence={"chat_id": conv.chat_id, **conv.foreign})]


def _squeeze(names: list[str]) -> list[str]:
    """Consecutive repeats folded (the same state shown by several events)."""
    return [n for i, n in enumerate(names) if i == 0 or names[i - 1] != n]


def _squeeze_ints(values: list[int]) -> str:
    return ", ".join(str(v) for v in values[:20]) + (" ..." if len(values) > 20 else "")




def reply_problem(conv: Conversation) -> str | None:
    """Why one message to an agent got no reply as the SDK's `send_message` returns it, or None:
    the run started a chat, its stream ended, and the chat ends with the assistant's ready answer."""
    if not 200 <= conv.start_status < 300 or not conv.chat_id:
        return f"POST /agents/run answered {conv.start_status} without starting a chat"
    if not conv.closed_by_server:
        return "the chat stream was still open at the deadline (the SDK would still be waiting)"
    messages = _messages(conv.final_chat)
    if not messages:
        return "GET /chats/{id} shows no messages once the stream ended"
    last = messages[-1]
    if last.get("role") != "assistant":
        return f"the chat's last message is the {last.get('role')!r}'s, not the agent's answer"
    if last.get("status") != "ready" or not _text(last).strip():
        errors = [p.get("error") for p in last.get("content") or [] if isinstance(p, dict) and p.get("error")]
        why = f" ({errors[0]})" if errors else ""
        return f"the agent's answer ended {last.get('status')!r} with {len(_text(last))} characters{why}"
    return None
