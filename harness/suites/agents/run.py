"""Agents suite: drive agent conversations as the Agent SDK does, record them, judge with AG- rules.

Conversations on the profile's `agent` role (the core model, plus its own config):
1. client tool round trips, three chats at once: the suite offers a `calculator` client tool,
   asks e.g. "What is 42 * 17?", answers the tool call from the stream (as the SDK's
   on_tool_call does) and expects "714";
2. a stop: a long answer, stopped at its first delta;
3. another key's probes on the first chat (read, stream, stop, tool result), when there are two keys.
Each conversation is written to the run folder (agents/conversations.jsonl) and judged.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from harness.checks.agents import CHECKS, ChatEvent, Conversation, ToolPost, check_conversation
from harness.checks.envelope import data_of
from harness.contract import load_chat_lifecycle
from harness.findings import Finding, SuiteResult
from harness.net import deadline
from harness.net.bounded import bounded_request
from harness.net.decoders import NdjsonDecoder
from harness.net.repro import curl
from harness.net.tls import policy
from harness.profile import REFERENCE, AppRole, Profile
from harness.progress import meter
from harness.suites.agents.calculator import calculate

SUITE = "agents"
CALCULATOR_TOOL = {
    "name": "calculator", "display_name": "calculator", "description": "Do math", "type": "client",
    "require_approval": False,
    "client": {"input_schema": {"type": "object", "required": ["expression"],
                                "properties": {"expression": {"type": "string",
                                                              "description": "Math expression"}}}},
}
# Tool round trips held at once, in separate chats (the first is the docs' example): a result
# that reached the wrong chat, or an answer built from another chat's result, shows as a
# wrong answer in AG-TOOL-ROUNDTRIP.
QUESTIONS = (("42 * 17", "714"), ("19 * 23", "437"), ("1234 + 4321", "5555"))
LONG_ASK = "Tell me a long story, at least three hundred words."


@dataclass
class AgentsOptions:
    deadline_s: float = 60.0
    stop_deadline_s: float = 10.0
    profile: Profile = field(default_factory=lambda: REFERENCE)
    budget: int = 500
    out_dir: Path | None = None


class _Session:
    """One key's HTTP client for the agent endpoints."""

    def __init__(self, base_url: str, key: str, timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout, verify=policy().context(),
                                 headers={"Authorization": f"Bearer {key}",
                                          "Content-Type": "application/json",
                                          "User-Agent": "inference-harness/0.1"})
        self.deadline_s = timeout
        self.requests = 0

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        self.requests += 1
        sent = time.monotonic()
        try:
            response = bounded_request(self.http, method, path, self.deadline_s, **kwargs)
        except httpx.HTTPError:
            meter().observe(None, True)  # the live line counts what the suite sees
            raise
        meter().observe((time.monotonic() - sent) * 1000.0, response.status_code >= 500)
        return response

    def read_stream(self, chat_id: str, conv: Conversation, started: float, deadline_s: float,
                    on_event: Callable[[ChatEvent], None]) -> int:
        """Read the chat stream until the server closes it or the deadline; the HTTP status.

        The run's deadline (harness/net/deadline.py) is checked first and shortens this one."""
        deadline.check_deadline()
        deadline_s = deadline.capped(deadline_s)
        self.requests += 1
        decoder = NdjsonDecoder()
        end = time.monotonic() + deadline_s
        timeout = httpx.Timeout(connect=5.0, read=deadline_s, write=5.0, pool=5.0)
        try:
            with self.http.stream("GET", f"/chats/{chat_id}/stream", timeout=timeout,
                                  headers={"Accept": "application/x-ndjson"}) as response:
                if response.status_code != 200:
                    return response.status_code  # only the status counts: the body is not read
                for chunk in response.iter_raw():
                    now = time.monotonic()
                    for decoded in decoder.feed(chunk):
                        event = _chat_event(decoded.payload, now - started)
                        if event is not None:
                            conv.events.append(event)
                            on_event(event)
                    if now > end:
                        return 200
                conv.closed_by_server = True
                return 200
        except httpx.HTTPError:
            return 0

    def close(self) -> None:
        self.http.close()


def _chat_event(payload: dict[str, Any] | None, at: float) -> ChatEvent | None:
    if payload is None:
        return None
    if payload.get("type") == "heartbeat":
        return ChatEvent(at, "heartbeat", {})
    data = payload.get("data")
    return ChatEvent(at, str(payload.get("event") or "message"), data if isinstance(data, dict) else {})


def run_agents(base_url: str, keys: list[str], options: AgentsOptions,
               progress: Callable[[str], None] = lambda _m: None) -> SuiteResult:
    """Run the conversations and judge them; never raises for what the target does."""
    started = time.monotonic()
    role = options.profile.get("agent")
    if role is None:
        why = "the profile maps no 'agent' role ([apps.agent] in harness.toml)"
        return SuiteResult(name=SUITE, status="skipped", error=why,
                           skipped={check: why for check in CHECKS})
    if options.budget < len(QUESTIONS) + 1:
        why = "task budget (--max-tasks) spent"
        return SuiteResult(name=SUITE, status="skipped", error=why, skipped={c: why for c in CHECKS})
    chats = load_chat_lifecycle()
    owner = _Session(base_url, keys[0], timeout=min(30.0, options.deadline_s))
    other = _Session(base_url, keys[1], timeout=10.0) if len(keys) > 1 else None
    findings: list[Finding] = []
    conversations: list[Conversation] = []
    skipped: dict[str, str] = {}
    try:
        progress(f"agents: {len(QUESTIONS)} client tool round trips at once")
        with ThreadPoolExecutor(len(QUESTIONS)) as pool:
            round_trips = list(pool.map(lambda qa: _tool_roundtrip(base_url, keys[0], role, options, *qa),
                                        QUESTIONS))
        conversations += [conv for conv, _ in round_trips]
        extra_requests = sum(count for _, count in round_trips)
        tool_conv = round_trips[0][0]
        progress("agents: a stopped answer")
        conversations.append(_stopped(owner, role, options))
        if other is not None and tool_conv.chat_id:
            _foreign_probes(other, tool_conv)
        elif other is None:
            skipped["AG-ISOLATION"] = "one API key: another key's probes need a second --api-key"
    finally:
        owner.close()
        if other is not None:
            other.close()
    for conv in conversations:
        if not conv.chat_id:
            findings.append(Finding(check="AG-RUN-STATES", suite=SUITE, message=f"{conv.label}: "
                                    f"POST /agents/run answered {conv.start_status} without starting "
                                    "a chat (no assistant_message.chat_id)",
                                    evidence={"status": conv.start_status}))
            continue
        for issue in check_conversation(conv, chats, options.stop_deadline_s):
            findings.append(Finding(check=issue.check, severity=issue.severity, suite=SUITE,
                                    message=issue.message, evidence=issue.evidence,
                                    repro=f"harness agents --base-url {base_url}  # then "
                                    + curl("GET", f"{base_url}/chats/{conv.chat_id}")))
    _write(options.out_dir, conversations)
    ran = [c for c in CHECKS if c not in skipped]
    return SuiteResult(
        name=SUITE, status="failed" if findings else "passed", checks=ran, findings=findings,
        skipped=skipped, duration_s=round(time.monotonic() - started, 3),
        metrics={"conversations": sum(1 for c in conversations if c.chat_id),
                 "tasks_created": sum(1 for c in conversations if c.chat_id),
                 "requests": owner.requests + extra_requests + (other.requests if other else 0),
                 "events": sum(len(c.events) for c in conversations)})


def _config(role: AppRole, tools: list[dict[str, Any]]) -> dict[str, Any]:
    config: dict[str, Any] = {"core_app": {"ref": role.app},
                              "system_prompt": "You are a helpful assistant. Use tools when offered.",
                              **(role.agent_config or {})}
    config["tools"] = [*(config.get("tools") or []), *tools]
    return config


def _start(session: _Session, role: AppRole, text: str, tools: list[dict[str, Any]],
           label: str) -> tuple[Conversation, float]:
    started = time.monotonic()
    body = {"chat_id": None, "input": {"text": text}, "agent_config": _config(role, tools),
            "agent_name": "inference-harness"}
    response = session.request("POST", "/agents/run", json=body)
    data = data_of(_json(response))
    assistant = data.get("assistant_message") if isinstance(data, dict) else None
    chat_id = assistant.get("chat_id") if isinstance(assistant, dict) else None
    conv = Conversation(label, chat_id if isinstance(chat_id, str) else "",
                        start_status=response.status_code)
    return conv, started


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _finish(session: _Session, conv: Conversation) -> None:
    response = session.request("GET", f"/chats/{conv.chat_id}")
    chat = data_of(_json(response))
    conv.final_chat = chat if isinstance(chat, dict) else None


def _tool_roundtrip(base_url: str, key: str, role: AppRole, options: AgentsOptions, expression: str,
                    answer: str) -> tuple[Conversation, int]:
    """One chat (its own client: the round trips run at once); the record and its request count."""
    session = _Session(base_url, key, timeout=min(30.0, options.deadline_s))
    try:
        return _tool_chat(session, role, options, expression, answer), session.requests
    finally:
        session.close()


def _tool_chat(session: _Session, role: AppRole, options: AgentsOptions, expression: str,
               answer: str) -> Conversation:
    question = f"What is {expression}? Use the calculator tool."
    conv, started = _start(session, role, question, [CALCULATOR_TOOL], f"tool round trip {expression}")
    conv.expect_in_answer = answer
    if not conv.chat_id:
        return conv
    answered: set[str] = set()

    def on_event(event: ChatEvent) -> None:
        # As the SDK's stream_all: a client tool awaiting input is run once, its result posted.
        if event.event != "chat_messages":
            return
        for inv in event.data.get("tool_invocations") or []:
            if not isinstance(inv, dict) or inv.get("id") in answered:
                continue
            if inv.get("type") == "client" and inv.get("status") == "awaiting_input":
                inv_id = str(inv["id"])
                answered.add(inv_id)
                function = _dict(inv.get("function"))
                arguments = _dict(function.get("arguments"))
                result = calculate(str(arguments.get("expression", "")))
                response = session.request("POST", f"/tools/{inv_id}", json={"result": result})
                conv.posts.append(ToolPost(inv_id, result, time.monotonic() - started,
                                           response.status_code))

    session.read_stream(conv.chat_id, conv, started, options.deadline_s, on_event)
    _finish(session, conv)
    return conv


def _stopped(session: _Session, role: AppRole, options: AgentsOptions) -> Conversation:
    conv, started = _start(session, role, LONG_ASK, [], "stop")
    if not conv.chat_id:
        return conv
    state: dict[str, str] = {}

    def on_event(event: ChatEvent) -> None:
        run = event.data if event.event == "agent_runs" else (
            event.data.get("active_run") if event.event == "chats" else None)
        if isinstance(run, dict) and isinstance(run.get("state"), str):
            state["run"] = run["state"]
        if event.event == "delta" and conv.stop_at is None:
            conv.state_at_stop = state.get("run", "working")
            response = session.request("POST", f"/chats/{conv.chat_id}/stop", content=b"")
            if 200 <= response.status_code < 300:
                conv.stop_at = time.monotonic() - started

    session.read_stream(conv.chat_id, conv, started, options.stop_deadline_s + 5.0, on_event)
    _finish(session, conv)
    return conv


def _foreign_probes(other: _Session, conv: Conversation) -> None:
    """Another key on the first chat, once it ended: read, stream, stop, answer its tool call."""
    chat_id = conv.chat_id
    invocation = next((p.invocation_id for p in conv.posts), "tinv_unknown")
    probes: dict[str, Callable[[], int]] = {
        "GET /chats/{id}": lambda: other.request("GET", f"/chats/{chat_id}").status_code,
        "GET /chats/{id}/stream": lambda: other.read_stream(chat_id, Conversation("probe", chat_id),
                                                           time.monotonic(), 2.0, lambda _e: None),
        "POST /chats/{id}/stop": lambda: other.request("POST", f"/chats/{chat_id}/stop",
                                                       content=b"").status_code,
        "POST /tools/{id}": lambda: other.request("POST", f"/tools/{invocation}",
                                                  json={"result": "0"}).status_code,
    }
    conv.foreign = {name: probe() for name, probe in probes.items()}


def _write(out_dir: Path | None, conversations: list[Conversation]) -> None:
    """agents/conversations.jsonl in the run folder: what the suite saw (no keys in it)."""
    if out_dir is None:
        return
    folder = out_dir / "agents"
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "conversations.jsonl").open("w", encoding="utf-8") as fh:
        for conv in conversations:
            fh.write(json.dumps(asdict(conv), default=str) + "\n")
