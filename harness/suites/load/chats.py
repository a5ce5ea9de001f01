"""One agent turn as a load user sees it: the chat stream's events, then the chat as GET shows it.

`ChatTurn` is what `streaming.read_stream` reads a chat stream into: it follows the run's
state, collects each message's deltas, hands a client tool call that waits for its result to
the user (who posts it) and records the agent latencies, in the HDR set of the phase:

- `agent.first_delta`: the message sent (`POST /agents/run`) to the first delta of the turn;
- `agent.delta_gap`: between two consecutive deltas of one message, as they arrived (the wait
  for a tool's result is between two messages, so never a gap);
- `agent.turn`: the message sent to the first event that shows the run ended.

`judge` then holds the turn to what the API promises (WIRE.md sections 8 and 13): the stream
showed the run's end and closed, each message's deltas have consecutive `seq` and add up to its
final text, a posted tool result completed its invocation and the answer after it uses it, and
the chat ends with a ready answer. Nothing here depends on how a model phrases its answer.
No Locust import and no requests: the user sends them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.contract import load_chat_lifecycle
from harness.net.decoders import StreamEvent
from harness.suites.load.config import CALCULATOR, PRODUCT
from harness.suites.load.metrics import PhaseMetrics
from harness.suites.load.stream_state import StreamFormat, StreamResult

_FACTORS = re.compile(r"^\(?\s*(\d+)\s*[*x\u00d7]\s*(\d+)\s*\)?$")
_NOT_DIGITS = re.compile(r"(?<=\d)[,\s](?=\d{3}\b)")
SAMPLE = 300  # characters of a text kept in an error sample


def calculator_result(arguments: Any) -> str | None:
    """The calculator's result for the scenario's question (42 * 17, either way round), or None.

    The harness answers only the question it asked: a call for anything else is the model's
    own business, answered with an error text and not judged.
    """
    expression = arguments.get("expression") if isinstance(arguments, dict) else None
    match = _FACTORS.match(expression.strip()) if isinstance(expression, str) else None
    if match is None or {match[1], match[2]} != {"42", "17"}:
        return None
    return PRODUCT


def mentions(text: str, number: str) -> bool:
    """Whether `text` has `number` in it (thousands separators allowed: "1,234")."""
    return number in _NOT_DIGITS.sub("", text)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def message_text(message: dict[str, Any]) -> str:
    """The text parts of a chat message, joined."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else []
    return "".join(str(p.get("text") or "") for p in parts if isinstance(p, dict) and p.get("type") == "text")


@dataclass
class Deltas:
    """The deltas of one message as they came: seq numbers and the text they carry."""

    seqs: list[Any] = field(default_factory=list)
    text: str = ""
    textual: bool = True  # every delta carried a string `response`
    last_ns: int = 0


@dataclass
class ChatTurn:
    """One turn: a message sent at `sent_ns`, its chat stream read, then the chat judged.

    `answer_tool(invocation_id, arguments)` is called once for each client tool call of the
    scenario's calculator that waits for its result (the user posts it and returns whether the
    post was answered 2xx).
    """

    metrics: PhaseMetrics
    chat_id: str
    run_id: str | None
    sent_ns: int
    answer_tool: Callable[[str, Any], bool]
    fmt: StreamFormat = "ndjson"
    result: StreamResult = field(default_factory=StreamResult)
    deltas: dict[str, Deltas] = field(default_factory=dict)
    first_delta_ns: int = 0
    ended_ns: int = 0
    run_state: str | None = None
    posted: dict[str, str] = field(default_factory=dict)  # invocation id -> result posted (2xx)
    asked: set[str] = field(default_factory=set)  # client invocations seen awaiting input
    invalid: int = 0

    # -- the stream ----------------------------------------------------------------------

    def event(self, event: StreamEvent, now: int) -> None:
        """One decoded line of the chat stream."""
        result = self.result
        result.events += 1
        if event.kind == "invalid":
            if event.reason is not None:
                result.cut = event.reason  # past a cap: the reader stops here
            else:
                self.invalid += 1
                self.metrics.error("chat_stream", "non-JSON stream event",
                                   {"chat": self.chat_id, "line": event.raw[:200].decode("utf-8", "replace")})
            return
        payload = event.payload or {}
        name, data = payload.get("event"), _dict(payload.get("data"))
        if name == "delta":
            self._delta(data, now)
        elif name == "agent_runs":
            self._run(data, now)
        elif name == "chats":
            self._run(_dict(data.get("active_run")), now)
        elif name == "chat_messages":
            self._message(data)

    def _delta(self, data: dict[str, Any], now: int) -> None:
        message = data.get("resource_id")
        if not isinstance(message, str):
            return  # the SDKs drop a delta without its message id (AG-DELTAS judges that)
        if not self.first_delta_ns:
            self.first_delta_ns = now
            self.metrics.hdr.record_ns("agent.first_delta", now - self.sent_ns)
        seen = self.deltas.setdefault(message, Deltas())
        if seen.last_ns:
            self.metrics.hdr.record_ns("agent.delta_gap", now - seen.last_ns)
        seen.last_ns = now
        seen.seqs.append(data.get("seq"))
        piece = _dict(data.get("delta")).get("response")
        if isinstance(piece, str):
            seen.text += piece
        else:
            seen.textual = False

    def _run(self, run: dict[str, Any], now: int) -> None:
        """A run's state as an event shows it; the turn's run ends once (its first end counts)."""
        state, run_id = run.get("state"), run.get("id")
        if not isinstance(state, str) or (self.run_id is not None and run_id != self.run_id):
            return
        self.run_state = state
        if self.ended_ns or state not in load_chat_lifecycle().run.terminal:
            return
        self.ended_ns = now
        self.metrics.hdr.record_ns("agent.turn", now - self.sent_ns)
        # What read_stream needs to give the server a short grace to close, then stop reading.
        self.result.terminal, self.result.terminal_ns = run, now

    def _message(self, message: dict[str, Any]) -> None:
        """A message update: a client calculator call waiting for its result is answered once."""
        for invocation in message.get("tool_invocations") or []:
            if not isinstance(invocation, dict):
                continue
            inv_id, function = invocation.get("id"), _dict(invocation.get("function"))
            if (invocation.get("type") != "client" or invocation.get("status") != "awaiting_input"
                    or not isinstance(inv_id, str) or inv_id in self.asked):
                continue
            self.asked.add(inv_id)
            if function.get("name") != CALCULATOR:
                continue  # a client tool of the profile's own: not the harness's to answer
            arguments = function.get("arguments")
            found = calculator_result(arguments)
            posted = found if found is not None else "error: this client only computes 42 * 17"
            if self.answer_tool(inv_id, posted) and found is not None:
                self.posted[inv_id] = found

    # -- the verdict ---------------------------------------------------------------------

    def stream_failure(self) -> str | None:
        """After the read: how the stream ended, as an error (counted) or None."""
        result, metrics = self.result, self.metrics
        sample = {"chat": self.chat_id, "bytes": result.nbytes, "events": result.events,
                  "run_state": self.run_state}
        reason = None
        if result.cut is not None:
            reason = f"stream cut: {result.cut}"
        elif result.error is not None:
            reason = "stream broke off"
            sample["error"] = result.error
        elif not self.ended_ns and result.closed:
            reason = "chat stream closed before the run ended"
        elif not self.ended_ns:
            reason = "the run did not end within the deadline"
        elif not result.closed:
            reason = "chat stream not closed after the run ended"
        if reason is not None:
            metrics.error("chat_stream", reason, sample)
        return reason

    def judge(self, chat: dict[str, Any]) -> None:
        """The chat as `GET /chats/{id}` shows it after the turn: deltas, tool results, answer."""
        metrics = self.metrics
        messages = [m for m in chat.get("chat_messages") or [] if isinstance(m, dict)]
        by_id = {m.get("id"): m for m in messages}
        for message_id, seen in self.deltas.items():
            message = by_id.get(message_id)
            seqs = seen.seqs
            if all(type(s) is int for s in seqs) and seqs != list(range(seqs[0], seqs[0] + len(seqs))):
                metrics.error("chat_stream", "delta seq not consecutive",
                              {"chat": self.chat_id, "message": message_id, "seq": seqs[:40]})
            elif message is not None and seen.textual and message.get("status") == "ready" \
                    and seen.text != message_text(message):
                metrics.error("chat_stream", "deltas do not add up to the message's text",
                              {"chat": self.chat_id, "message": message_id,
                               "deltas": seen.text[:SAMPLE], "text": message_text(message)[:SAMPLE]})
        for inv_id, posted in self.posted.items():
            self._tool_answered(messages, inv_id, posted)
        last = messages[-1] if messages else {}
        if not (last.get("role") == "assistant" and last.get("status") == "ready"):
            metrics.error("get_chat", "the chat's last message is not a ready answer once its run ended",
                          {"chat": self.chat_id, "last": str(last)[:SAMPLE]})

    def _tool_answered(self, messages: list[dict[str, Any]], inv_id: str, posted: str) -> None:
        """The posted result completed its invocation, and the next assistant message uses it."""
        metrics = self.metrics
        for index, message in enumerate(messages):
            invocation = next((i for i in message.get("tool_invocations") or []
                               if isinstance(i, dict) and i.get("id") == inv_id), None)
            if invocation is None:
                continue
            if invocation.get("status") != "completed":
                metrics.error("tool_result", "a posted tool result did not complete its invocation",
                              {"chat": self.chat_id, "invocation": inv_id,
                               "status": invocation.get("status")})
                return
            answer = next((m for m in messages[index + 1:] if m.get("role") == "assistant"), None)
            text = message_text(answer) if answer is not None else ""
            if not mentions(text, posted):
                metrics.error("get_chat", f"the answer after the calculator's result lacks {posted}",
                              {"chat": self.chat_id, "invocation": inv_id, "answer": text[:SAMPLE]})
            else:
                metrics.count("tool_roundtrips")
            return
        metrics.error("get_chat", "a tool invocation the stream showed is missing from the chat",
                      {"chat": self.chat_id, "invocation": inv_id})
