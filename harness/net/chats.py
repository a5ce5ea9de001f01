"""The agent chat client the agents and lifecycle suites share, holding a chat as the Agent SDK does.

`ChatSession` is one key's client for the agent endpoints. Every request is bounded, counted on
the live line and, given a `ChatRecorder`, written to the run's history through the one
Observation encoder: channel `agent_run` (POST /agents/run) or `chat` (the chat's reads, stream,
stop and tool results), no task (the task checker leaves them alone), `extra.request` naming the
operation (`GET /chats/{id}/stream`) and `extra.chat` the chat. `read_stream` reads a chat stream
into a `Conversation` (harness/checks/agents.py) under the harness's one rule for answers that
never came (harness/net/bounded.unanswered): a stream whose head never came is indeterminate,
counted and given no status; one cut after its head is read as closed by the server, which is
what an SDK sees. The other functions are the SDK's moves: start a turn, answer a client tool,
stop, read the chat at the end, and another key's probes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from harness.checks.agents import ChatEvent, Conversation, ToolPost
from harness.history import Channel, HistoryWriter, Observation, Outcome
from harness.net import deadline
from harness.net.bounded import bounded_request, unanswered
from harness.net.calculator import calculate
from harness.net.client import response_data
from harness.net.decoders import NdjsonDecoder
from harness.net.recording import rate_limit_extra
from harness.net.tls import policy
from harness.profile import AppRole
from harness.progress import meter

CALCULATOR_TOOL = {
    "name": "calculator", "display_name": "calculator", "description": "Do math", "type": "client",
    "require_approval": False,
    "client": {"input_schema": {"type": "object", "required": ["expression"],
                                "properties": {"expression": {"type": "string",
                                                              "description": "Math expression"}}}},
}
STREAM = "GET /chats/{id}/stream"


@dataclass(frozen=True)
class ChatRecorder:
    """Where a session's requests go in the run's history: the writer, the observer, the key label."""

    history: HistoryWriter
    observer: str
    key: str


def _operation(method: str, path: str) -> tuple[Channel, str, str]:
    """(history channel, operation name, rate-limit group) of an agent endpoint's request."""
    parts = path.strip("/").split("/")
    if parts[0] == "agents":
        return "agent_run", f"{method} /{path.strip('/')}", "run"
    template = "/".join("{id}" if index == 1 else part for index, part in enumerate(parts))
    return "chat", f"{method} /{template}", "get"


def _chat_of(path: str) -> str | None:
    parts = path.strip("/").split("/")
    return parts[1] if len(parts) > 1 and parts[0] == "chats" else None


class ChatSession:
    """One key's HTTP client for the agent endpoints (one thread uses it at a time)."""

    def __init__(self, base_url: str, key: str, timeout: float,
                 recorder: ChatRecorder | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout, verify=policy().context(),
                                 headers={"Authorization": f"Bearer {key}",
                                          "Content-Type": "application/json",
                                          "User-Agent": "inference-harness/0.1"})
        self.deadline_s = timeout
        self.recorder = recorder
        self.requests = 0
        # Requests whose answer never came (the operation, e.g. "GET /chats/{id}/stream").
        self.indeterminate: list[str] = []

    def _record(self, method: str, path: str, send: int, wall: float, recv: int | None,
                response: httpx.Response | None, error: BaseException | None,
                chat_id: str | None = None) -> None:
        channel, operation, group = _operation(method, path)
        if error is not None and unanswered(error):
            self.indeterminate.append(operation)
        if self.recorder is None:
            return
        extra: dict[str, Any] = {"request": operation}
        chat = chat_id or _chat_of(path)
        if chat:
            extra["chat"] = chat
        if response is None:
            extra["error"] = type(error).__name__
            outcome: Outcome = "timeout" if error is not None and unanswered(error) else "error"
            self.recorder.history.append(Observation(None, self.recorder.observer, channel, send, None,
                                                     wall, outcome=outcome, key=self.recorder.key,
                                                     extra=extra))
            return
        extra.update(rate_limit_extra(response.headers, group))
        self.recorder.history.append(Observation(None, self.recorder.observer, channel, send, recv, wall,
                                                 http=response.status_code, key=self.recorder.key,
                                                 extra=extra))

    def request(self, method: str, path: str, chat: str | None = None, **kwargs: Any) -> httpx.Response:
        """One bounded request; an answer that never came raises (and is counted and recorded).
        `chat` names the chat in the history when the path does not (a tool result)."""
        self.requests += 1
        sent, wall = time.monotonic_ns(), time.time()
        try:
            response = bounded_request(self.http, method, path, self.deadline_s, **kwargs)
        except httpx.HTTPError as exc:
            meter().observe(None, True)  # the live line counts what the suite sees
            self._record(method, path, sent, wall, None, None, exc, chat)
            raise
        recv = time.monotonic_ns()
        meter().observe((recv - sent) / 1e6, response.status_code >= 500)
        self._record(method, path, sent, wall, recv, response, None, chat or _started_chat(response))
        return response

    def read_stream(self, chat_id: str, conv: Conversation, started: float, deadline_s: float,
                    on_event: Callable[[ChatEvent], None], stop_grace_s: float | None = None,
                    stopped_at: Callable[[], float | None] | None = None) -> int | None:
        """Read the chat stream into `conv` until the server closes it or the deadline passes.

        Returns the HTTP status (0: a transport error before the head), or None when the head
        never came before the deadline: indeterminate, counted in `indeterminate`. A stream cut
        after its head is closed by the server (`conv.closed_by_server`), as an SDK reads it.
        Once the chat was stopped (`stopped_at()`, by default `conv.stop_at`), reading ends
        `stop_grace_s` after it. The run's deadline
        (harness/net/deadline.py) is checked first and shortens this one."""
        deadline.check_deadline()
        deadline_s = deadline.capped(deadline_s)
        self.requests += 1
        decoder = NdjsonDecoder()
        end = time.monotonic() + deadline_s
        timeout = httpx.Timeout(connect=5.0, read=deadline_s, write=5.0, pool=5.0)
        path = f"/chats/{chat_id}/stream"
        sent, wall = time.monotonic_ns(), time.time()
        headed = False
        try:
            with self.http.stream("GET", path, timeout=timeout,
                                  headers={"Accept": "application/x-ndjson"}) as response:
                headed = True
                head = time.monotonic_ns()
                meter().observe((head - sent) / 1e6, response.status_code >= 500)
                self._record("GET", path, sent, wall, head, response, None)
                if response.status_code != 200:
                    return response.status_code  # only the status counts: the body is not read
                for chunk in response.iter_raw():
                    now = time.monotonic()
                    for decoded in decoder.feed(chunk):
                        event = chat_event(decoded.payload, now - started)
                        if event is not None:
                            conv.events.append(event)
                            on_event(event)
                    stopped = stopped_at() if stopped_at is not None else conv.stop_at
                    if stop_grace_s is not None and stopped is not None:
                        end = min(end, started + stopped + stop_grace_s)
                    if now > end or decoder.stopped:  # past the stream cap: read no further
                        return 200
                conv.closed_by_server = True
                return 200
        except httpx.HTTPError as exc:
            if not headed:
                meter().observe(None, True)
                self._record("GET", path, sent, wall, None, None, exc)
                return None if unanswered(exc) else 0
            if not isinstance(exc, httpx.TimeoutException):
                conv.closed_by_server = True  # cut after the head: the SDK's stream ends here
            return 200

    def close(self) -> None:
        self.http.close()


def _started_chat(response: httpx.Response) -> str | None:
    """The chat a 2xx POST /agents/run answer names (assistant_message.chat_id), if any."""
    if not response.request.url.path.endswith("/agents/run") or response.status_code >= 300:
        return None
    data = response_data(response)
    assistant = data.get("assistant_message") if isinstance(data, dict) else None
    chat = assistant.get("chat_id") if isinstance(assistant, dict) else None
    return chat if isinstance(chat, str) else None


def chat_event(payload: dict[str, Any] | None, at: float) -> ChatEvent | None:
    """One decoded stream line as a ChatEvent (`at`: seconds on the conversation's clock)."""
    if payload is None:
        return None
    if payload.get("type") == "heartbeat":
        return ChatEvent(at, "heartbeat", {})
    data = payload.get("data")
    return ChatEvent(at, str(payload.get("event") or "message"), data if isinstance(data, dict) else {})


def agent_config(role: AppRole, tools: list[dict[str, Any]]) -> dict[str, Any]:
    """The profile's agent with `tools` added to its own (the SDK's `client.agent(config)`)."""
    config: dict[str, Any] = {"core_app": {"ref": role.app},
                              "system_prompt": "You are a helpful assistant. Use tools when offered.",
                              **(role.agent_config or {})}
    config["tools"] = [*(config.get("tools") or []), *tools]
    return config


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def start(session: ChatSession, role: AppRole, text: str, tools: list[dict[str, Any]], label: str,
          chat_id: str | None = None) -> Conversation:
    """POST /agents/run: a new chat (`chat_id` None) or the next turn of one. The conversation
    has no chat id when the answer started none."""
    body = {"chat_id": chat_id, "input": {"text": text}, "agent_config": agent_config(role, tools),
            "agent_name": "inference-harness"}
    response = session.request("POST", "/agents/run", json=body)
    data = response_data(response)
    assistant = data.get("assistant_message") if isinstance(data, dict) else None
    started = assistant.get("chat_id") if isinstance(assistant, dict) else None
    return Conversation(label, started if isinstance(started, str) else "",
                        start_status=response.status_code)


def awaiting_client_tools(event: ChatEvent, answered: set[str]) -> list[dict[str, Any]]:
    """The client tool calls of a `chat_messages` event that wait for a result not yet given
    (as the SDK's stream_all picks them up)."""
    if event.event != "chat_messages":
        return []
    return [inv for inv in event.data.get("tool_invocations") or []
            if isinstance(inv, dict) and inv.get("id") not in answered
            and inv.get("type") == "client" and inv.get("status") == "awaiting_input"]


def post_tool_result(session: ChatSession, conv: Conversation, invocation: dict[str, Any],
                     started: float) -> None:
    """Run the calculator on the call's arguments and post its result (the SDK's on_tool_call).
    The post's time is when it was sent: no reader may see the call completed before that."""
    arguments = as_dict(as_dict(invocation.get("function")).get("arguments"))
    result = calculate(str(arguments.get("expression", "")))
    sent = time.monotonic() - started
    response = session.request("POST", f"/tools/{invocation['id']}", chat=conv.chat_id,
                               json={"result": result})
    conv.posts.append(ToolPost(str(invocation["id"]), result, sent, response.status_code))


def stop(session: ChatSession, conv: Conversation, started: float, state: str) -> None:
    """POST /chats/{id}/stop; `state` is the run's state the client had seen."""
    conv.state_at_stop = state
    response = session.request("POST", f"/chats/{conv.chat_id}/stop", content=b"")
    if 200 <= response.status_code < 300:
        conv.stop_at = time.monotonic() - started


def run_state(event: ChatEvent) -> str | None:
    """The run state an event shows (agent_runs, or a chats event's active_run), if any."""
    run = event.data if event.event == "agent_runs" else (
        event.data.get("active_run") if event.event == "chats" else None)
    state = run.get("state") if isinstance(run, dict) else None
    return state if isinstance(state, str) else None


def finish(session: ChatSession, conv: Conversation) -> None:
    """The chat as GET /chats/{id} shows it at the end of the conversation."""
    chat = response_data(session.request("GET", f"/chats/{conv.chat_id}"))
    conv.final_chat = chat if isinstance(chat, dict) else None


def foreign_probes(other: ChatSession, conv: Conversation) -> None:
    """Another key on the chat, once it ended: read, stream, stop, answer its tool call. A probe
    whose answer never came is indeterminate (counted by `other`), not a status."""
    chat_id = conv.chat_id
    invocation = next((p.invocation_id for p in conv.posts), "tinv_unknown")
    probes: dict[str, Callable[[], int | None]] = {
        "GET /chats/{id}": lambda: other.request("GET", f"/chats/{chat_id}").status_code,
        STREAM: lambda: other.read_stream(chat_id, Conversation("probe", chat_id), time.monotonic(),
                                          min(2.0, other.deadline_s), lambda _e: None),
        "POST /chats/{id}/stop": lambda: other.request("POST", f"/chats/{chat_id}/stop",
                                                       content=b"").status_code,
        "POST /tools/{id}": lambda: other.request("POST", f"/tools/{invocation}", chat=chat_id,
                                                  json={"result": "0"}).status_code,
    }
    for name, probe in probes.items():
        try:
            status = probe()
        except httpx.HTTPError as exc:
            if not unanswered(exc):
                raise
            continue
        if status is not None:
            conv.foreign[name] = status


def write_conversations(path: Path, conversations: Iterable[Conversation]) -> None:
    """What a suite saw of its chats, one JSON line per conversation (no keys in it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for conv in conversations:
            fh.write(json.dumps(asdict(conv), default=str) + "\n")
