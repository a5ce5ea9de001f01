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

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from harness.checks.agents import CHECKS, ChatEvent, Conversation, check_conversation
from harness.contract import load_chat_lifecycle
from harness.findings import Finding, SuiteResult
from harness.history import HistoryWriter, key_label
from harness.net.chats import (
    CALCULATOR_TOOL,
    ChatRecorder,
    ChatSession,
    awaiting_client_tools,
    finish,
    foreign_probes,
    post_tool_result,
    run_state,
    start,
    stop,
    write_conversations,
)
from harness.net.repro import curl
from harness.profile import REFERENCE, AppRole, Profile

SUITE = "agents"
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
    history_path: Path | None = None  # the run's history: every request goes there too


def run_agents(base_url: str, keys: list[str], options: AgentsOptions,
               progress: Callable[[str], None] = lambda _m: None) -> SuiteResult:
    """Run the conversations and judge them; never raises for what the target does."""
    role = options.profile.get("agent")
    if role is None:
        why = "the profile maps no 'agent' role ([apps.agent] in harness.toml)"
        return SuiteResult(name=SUITE, status="skipped", error=why,
                           skipped={check: why for check in CHECKS})
    if options.budget < len(QUESTIONS) + 1:
        why = "task budget (--max-tasks) spent"
        return SuiteResult(name=SUITE, status="skipped", error=why, skipped={c: why for c in CHECKS})
    if options.history_path is None:
        return _run(base_url, keys, role, options, None, progress)
    with HistoryWriter(options.history_path) as history:
        return _run(base_url, keys, role, options, history, progress)


def _run(base_url: str, keys: list[str], role: AppRole, options: AgentsOptions,
         history: HistoryWriter | None, progress: Callable[[str], None]) -> SuiteResult:
    started = time.monotonic()
    chats = load_chat_lifecycle()

    def session(index: int, observer: str, timeout: float) -> ChatSession:
        recorder = ChatRecorder(history, f"agents/{observer}", key_label(index)) if history else None
        return ChatSession(base_url, keys[index], timeout=timeout, recorder=recorder)

    timeout = min(30.0, options.deadline_s)
    sessions = [session(0, f"chat{n + 1}", timeout) for n in range(len(QUESTIONS))]
    owner = session(0, "stop", timeout)
    other = session(1, "foreign", 10.0) if len(keys) > 1 else None
    findings: list[Finding] = []
    conversations: list[Conversation] = []
    skipped: dict[str, str] = {}
    try:
        progress(f"agents: {len(QUESTIONS)} client tool round trips at once")
        with ThreadPoolExecutor(len(QUESTIONS)) as pool:
            conversations += pool.map(lambda pair: _tool_chat(pair[0], role, options, *pair[1]),
                                      zip(sessions, QUESTIONS, strict=True))
        tool_conv = conversations[0]
        progress("agents: a stopped answer")
        conversations.append(_stopped(owner, role, options))
        if other is not None and tool_conv.chat_id:
            foreign_probes(other, tool_conv)
        elif other is None:
            skipped["AG-ISOLATION"] = "one API key: another key's probes need a second --api-key"
    finally:
        for each in [*sessions, owner, *([other] if other else [])]:
            each.close()
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
    if options.out_dir is not None:
        write_conversations(options.out_dir / "agents" / "conversations.jsonl", conversations)
    everyone = [*sessions, owner, *([other] if other else [])]
    unanswered = [name for each in everyone for name in each.indeterminate]
    ran = [c for c in CHECKS if c not in skipped]
    return SuiteResult(
        name=SUITE, status="failed" if findings else "passed", checks=ran, findings=findings,
        skipped=skipped, duration_s=round(time.monotonic() - started, 3),
        metrics={"conversations": sum(1 for c in conversations if c.chat_id),
                 "tasks_created": sum(1 for c in conversations if c.chat_id),
                 "requests": sum(each.requests for each in everyone),
                 "events": sum(len(c.events) for c in conversations),
                 # Answers that never came (harness/net/bounded.unanswered): judged neither way.
                 "indeterminate": len(unanswered), "indeterminate_requests": unanswered[:20]})


def _tool_chat(session: ChatSession, role: AppRole, options: AgentsOptions, expression: str,
               answer: str) -> Conversation:
    """One chat (its own session: the round trips run at once)."""
    question = f"What is {expression}? Use the calculator tool."
    started = time.monotonic()
    conv = start(session, role, question, [CALCULATOR_TOOL], f"tool round trip {expression}")
    conv.expect_in_answer = answer
    if not conv.chat_id:
        return conv
    answered: set[str] = set()

    def on_event(event: ChatEvent) -> None:
        # As the SDK's stream_all: a client tool awaiting input is run once, its result posted.
        for invocation in awaiting_client_tools(event, answered):
            answered.add(str(invocation["id"]))
            post_tool_result(session, conv, invocation, started)

    session.read_stream(conv.chat_id, conv, started, options.deadline_s, on_event)
    finish(session, conv)
    return conv


def _stopped(session: ChatSession, role: AppRole, options: AgentsOptions) -> Conversation:
    started = time.monotonic()
    conv = start(session, role, LONG_ASK, [], "stop")
    if not conv.chat_id:
        return conv
    state: dict[str, str] = {}

    def on_event(event: ChatEvent) -> None:
        seen = run_state(event)
        if seen is not None:
            state["run"] = seen
        if event.event == "delta" and conv.stop_at is None and conv.state_at_stop is None:
            stop(session, conv, started, state.get("run", "working"))

    session.read_stream(conv.chat_id, conv, started, options.stop_deadline_s + 5.0, on_event)
    finish(session, conv)
    return conv
