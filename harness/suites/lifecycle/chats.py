"""The lifecycle suite's chats: agent chats held at once beside the tasks, each watched by others.

Each chat is a few turns (multi-turn: the same chat id) planned from the run's seed: client tool
round trips (the calculator, the docs' "42 * 17" first), long answers (always stopped) and a name
to remember, and stops at seeded moments (as the run is accepted, at the n-th delta, or instead
of a tool's result). A driver holds the chat as the Agent SDK does (its stream, its tool results, its stops);
for every turn a watcher reads the same chat stream on its own connection, and a poller reads
GET /chats/{id} all along. Each record is judged by the AG- rules (harness/checks/agents.py):
the driver's and the watcher's per turn, the poller's over the whole chat, each GET giving the
rules the run and messages it shows.

Stops only fall where the run cannot have ended by itself (before it answers, in the first
words of a long answer, or while a tool call waits for this client), so a stop answered 2xx must
end the run canceled.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from harness.checks.agents import CHECKS as AG_CHECKS
from harness.checks.agents import ChatEvent, Conversation, ToolPost, check_conversation
from harness.contract import load_chat_lifecycle
from harness.findings import Finding
from harness.history import HistoryWriter, key_label
from harness.net.bounded import unanswered
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
from harness.net.client import response_data
from harness.net.repro import curl
from harness.profile import AppRole

SUITE = "lifecycle"
# The tool turns' questions, the docs' example first. The answer is judged against what the
# client's calculator posted (AG-TOOL-ROUNDTRIP): every record of a chat holds all its turns.
CALCULATIONS = ("42 * 17", "19 * 23", "1234 + 4321", "365 * 24", "12 * 12", "81 / 9")
NAMES = ("Ada", "Grace", "Alan", "Edsger", "Barbara")
STORY = "Tell me a long story, at least three hundred words."
# The first words of the reference model's turns: a stop at a delta up to these cannot come after
# the run's end (a tool turn then waits for this client; a story has hundreds of words).
TOOL_TURN_DELTAS = 5
STORY_DELTAS = 60
ACTIVE = ("submitted", "working", "input_required", "auth_required")


@dataclass(frozen=True)
class Turn:
    """One user message of a chat, and when (if ever) its run is stopped.

    `stop`: None, "submitted" (as soon as the run is accepted), "tool" (instead of the client
    tool's result) or "delta:N" (at the N-th delta of the stream; in a tool turn at the tool call
    at the latest: its result is never posted once a stop is planned)."""

    text: str
    tool: bool = False
    stop: str | None = None


@dataclass(frozen=True)
class ChatPlan:
    turns: tuple[Turn, ...]


def plan_chats(seed: int, chats: int, turns: int, budget: int, stop_share: float = 0.4) -> list[ChatPlan]:
    """The chats of a run: the same seed gives the same plan. At most `budget` turns in all (each
    is a billable run), spread over the chats; one stop at least when any turn can take one."""
    rng = random.Random(f"lifecycle-chats/{seed}")
    total = max(0, min(chats * turns, budget))
    counts = [total // chats + (1 if index < total % chats else 0) for index in range(chats)] if chats else []
    plans: list[list[Turn]] = []
    for index, count in enumerate(c for c in counts if c):
        told: str | None = None
        chat: list[Turn] = []
        for number in range(count):
            kind = "calc" if number == 0 else rng.choice(("calc", "story", "name"))
            if kind == "name":
                if told is None:
                    told = rng.choice(NAMES)
                    chat.append(Turn(f"My name is {told}."))
                else:
                    chat.append(Turn("What is my name?"))
                continue
            first = index == 0 and number == 0  # the docs' example always runs to its answer
            stops = rng.random() < stop_share and not first
            if kind == "calc":
                expression = CALCULATIONS[0] if first else rng.choice(CALCULATIONS)
                where = rng.choice(("submitted", "tool", f"delta:{rng.randint(1, TOOL_TURN_DELTAS)}"))
                chat.append(Turn(f"What is {expression}? Use the calculator tool.", tool=True,
                                 stop=where if stops else None))
            else:  # a long answer is always stopped: a whole one would only make the run slower
                where = rng.choice(("submitted", f"delta:{rng.randint(1, STORY_DELTAS)}"))
                chat.append(Turn(STORY, stop=where))
        plans.append(chat)
    if not any(t.stop for chat in plans for t in chat):
        # A plan without a stop would list AG-STOP as passed without judging it: the last turn
        # that can take one takes one (never the docs' example, the first chat's first turn).
        can = [(c, n) for c, chat in enumerate(plans) for n, t in enumerate(chat)
               if (t.tool or t.text == STORY) and (c, n) != (0, 0)]
        if can:
            c, n = can[-1]
            turn = plans[c][n]
            plans[c][n] = Turn(turn.text, turn.tool, "tool" if turn.tool else "submitted")
    return [ChatPlan(tuple(chat)) for chat in plans]


@dataclass
class ChatOptions:
    deadline_s: float = 60.0  # one turn's stream at most
    stop_deadline_s: float = 10.0  # a stopped run ends canceled within this
    poll_interval_s: float = 0.5
    turn_gap_s: float = 0.0  # between one chat's turns: the run budget's share of the chats
    out_dir: Path | None = None


@dataclass
class ChatTally:
    """What the chats did, for the suite's metrics."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    turns: int = 0
    refused: int = 0
    stops: int = 0
    tool_posts: int = 0
    polls: int = 0
    errors: list[str] = field(default_factory=list)
    indeterminate: list[str] = field(default_factory=list)


@dataclass
class _Chat:
    """One chat's shared facts: its clock, its id, the tool results posted so far."""

    index: int
    started: float
    chat_id: str = ""
    posts: list[ToolPost] = field(default_factory=list)


class ChatRunner:
    """Holds the planned chats at once (one thread each), then judges what every reader saw."""

    def __init__(self, base_url: str, keys: list[str], role: AppRole, history: HistoryWriter,
                 options: ChatOptions) -> None:
        self.base_url, self.keys, self.role, self.history = base_url, keys, role, history
        self.options = options
        self.tally = ChatTally()
        self.conversations: list[Conversation] = []
        self._threads: list[threading.Thread] = []

    def _session(self, observer: str, key: int = 0, timeout: float | None = None) -> ChatSession:
        recorder = ChatRecorder(self.history, f"chats/{observer}", key_label(key))
        return ChatSession(self.base_url, self.keys[key], min(30.0, timeout or self.options.deadline_s),
                           recorder)

    def start(self, plans: list[ChatPlan]) -> None:
        for index, plan in enumerate(plans):
            thread = threading.Thread(target=self._hold, args=(index, plan), daemon=True,
                                      name=f"lifecycle-chat{index + 1}")
            self._threads.append(thread)
            thread.start()

    def join(self, timeout_s: float) -> None:
        end = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, end - time.monotonic()))

    # -- one chat ------------------------------------------------------------------------------

    def _hold(self, index: int, plan: ChatPlan) -> None:
        name = f"chat{index + 1}"
        driver, watcher, poller = (self._session(f"{name}/{who}") for who in ("driver", "stream", "poll"))
        chat = _Chat(index, time.monotonic())
        records: list[Conversation] = []
        polling = threading.Event()
        poll_record = Conversation(f"{name} polls", "", posts=chat.posts)
        poll_thread: threading.Thread | None = None
        try:
            for number, turn in enumerate(plan.turns, 1):
                if number > 1 and self.options.turn_gap_s:
                    time.sleep(self.options.turn_gap_s)
                conv = self._start_turn(driver, chat, turn, f"{name} turn {number}")
                if conv is None:
                    break
                if poll_thread is None:
                    poll_record.chat_id = chat.chat_id
                    poll_thread = threading.Thread(target=self._poll, daemon=True,
                                                   args=(poller, chat, poll_record, polling),
                                                   name=f"lifecycle-{name}-poll")
                    poll_thread.start()
                watched = Conversation(f"{name} turn {number} (second stream)", chat.chat_id,
                                       posts=chat.posts)
                watch = threading.Thread(target=self._watch, args=(watcher, chat, watched, conv), daemon=True,
                                         name=f"lifecycle-{name}-stream")
                watch.start()
                self._drive(driver, chat, conv, turn)
                watch.join(self.options.deadline_s + 5.0)
                finish(driver, conv)
                watched.final_chat = conv.final_chat
                records += [conv, watched]
                run = conv.final_chat.get("active_run") if conv.final_chat else None
                if isinstance(run, dict) and run.get("state") in ACTIVE:
                    break  # the run goes on (a stop ignored): the next turn would be refused
            polling.set()
            if poll_thread is not None:
                poll_thread.join(self.options.deadline_s)
                finish(poller, poll_record)
                records.append(poll_record)
            if index == 0 and len(self.keys) > 1 and records:
                foreign = self._session(f"{name}/foreign", key=1, timeout=10.0)
                try:
                    foreign_probes(foreign, records[-1])
                finally:
                    self._count(foreign)
                    foreign.close()
        except httpx.HTTPError as exc:
            # An answer that never came is counted by its session; anything else ends the chat.
            if not unanswered(exc):
                with self.tally.lock:
                    self.tally.errors.append(f"{name}: {type(exc).__name__}: {exc}"[:300])
        finally:
            polling.set()
            for session in (driver, watcher, poller):
                self._count(session)
                session.close()
            with self.tally.lock:
                self.conversations += records

    def _count(self, session: ChatSession) -> None:
        with self.tally.lock:
            self.tally.indeterminate += session.indeterminate
            session.indeterminate = []

    def _start_turn(self, driver: ChatSession, chat: _Chat, turn: Turn, label: str) -> Conversation | None:
        conv = start(driver, self.role, turn.text, [CALCULATOR_TOOL] if turn.tool else [], label,
                     chat.chat_id or None)
        if not conv.chat_id:
            with self.tally.lock:
                self.tally.refused += 1  # refused (a 429, a busy chat): counted, as a refused run
            return None
        chat.chat_id = chat.chat_id or conv.chat_id
        conv.posts = chat.posts  # every record of the chat knows every result posted
        with self.tally.lock:
            self.tally.turns += 1
        return conv

    def _drive(self, driver: ChatSession, chat: _Chat, conv: Conversation, turn: Turn) -> None:
        """The SDK's side of one turn: read the stream, answer the tool, stop where planned."""
        state = {"run": "submitted"}
        deltas = 0
        answered: set[str] = set()
        at_delta = int(turn.stop.split(":")[1]) if turn.stop and turn.stop.startswith("delta:") else None

        def halt() -> None:
            if conv.state_at_stop is None:
                stop(driver, conv, chat.started, state["run"])
                with self.tally.lock:
                    self.tally.stops += 1

        def on_event(event: ChatEvent) -> None:
            nonlocal deltas
            seen = run_state(event)
            if seen is not None:
                state["run"] = seen
            if event.event == "delta":
                deltas += 1
                if deltas == at_delta:
                    halt()
            for invocation in awaiting_client_tools(event, answered):
                answered.add(str(invocation["id"]))
                if turn.stop is not None:
                    # Stopped instead of answered, at the latest here: a reader that joined late
                    # and missed the first deltas must not stop during the answer, which can end
                    # (completed) before the stop arrives.
                    halt()
                else:
                    post_tool_result(driver, conv, invocation, chat.started)
                    with self.tally.lock:
                        self.tally.tool_posts += 1

        if turn.stop == "submitted":
            halt()
        driver.read_stream(conv.chat_id, conv, chat.started, self.options.deadline_s, on_event,
                           stop_grace_s=self.options.stop_deadline_s)

    def _watch(self, watcher: ChatSession, chat: _Chat, conv: Conversation, driven: Conversation) -> None:
        """A second reader of the turn's stream; it stops waiting when the driver's stop does."""
        watcher.read_stream(conv.chat_id, conv, chat.started, self.options.deadline_s, lambda _e: None,
                            stop_grace_s=self.options.stop_deadline_s, stopped_at=lambda: driven.stop_at)

    def _poll(self, poller: ChatSession, chat: _Chat, record: Conversation, done: threading.Event) -> None:
        while not done.is_set():
            try:
                response = poller.request("GET", f"/chats/{chat.chat_id}")
            except httpx.HTTPError as exc:
                if unanswered(exc):
                    continue  # counted by the session
                return
            with self.tally.lock:
                self.tally.polls += 1
            if response.status_code == 200:
                record.events += poll_events(response_data(response), time.monotonic() - chat.started)
            done.wait(self.options.poll_interval_s)

    # -- judging -------------------------------------------------------------------------------

    def judge(self, seed: int, stop_deadline_s: float) -> tuple[list[Finding], dict[str, str]]:
        """Findings from every record, and the AG- checks that judged nothing (with why)."""
        chats = load_chat_lifecycle()
        findings: list[Finding] = []
        for conv in self.conversations:
            for issue in check_conversation(conv, chats, stop_deadline_s):
                findings.append(Finding(
                    check=issue.check, severity=issue.severity, suite=SUITE, message=issue.message,
                    evidence=issue.evidence,
                    repro=f"harness lifecycle --base-url {self.base_url} --seed {seed}  # then "
                    + curl("GET", f"{self.base_url}/chats/{conv.chat_id}")))
        if self.options.out_dir is not None:
            write_conversations(self.options.out_dir / "lifecycle" / "conversations.jsonl",
                                self.conversations)
        return findings, self.unjudged()

    def unjudged(self) -> dict[str, str]:
        skipped: dict[str, str] = {}
        if not self.conversations:
            why = "no chat was started (every POST /agents/run refused or unanswered)"
            return {check: why for check in AG_CHECKS}
        if not any(c.stop_at is not None for c in self.conversations):
            skipped["AG-STOP"] = "no planned stop was answered 2xx (the plan has none with this budget)"
        if not any(200 <= p.status < 300 for c in self.conversations for p in c.posts):
            skipped["AG-TOOL-ROUNDTRIP"] = "no client tool result was posted"
        if not any(c.foreign for c in self.conversations):
            skipped["AG-ISOLATION"] = ("one API key: another key's probes need a second --api-key"
                                       if len(self.keys) < 2 else "another key's probes got no answer")
        return skipped


def poll_events(chat: Any, at: float) -> list[ChatEvent]:
    """What one GET /chats/{id} shows, as the records the AG- rules read: its run (as an
    `agent_runs` event) and each message (a `chat_messages` event), all at the answer's time."""
    if not isinstance(chat, dict):
        return []
    run = chat.get("active_run")
    events = [ChatEvent(at, "agent_runs", run)] if isinstance(run, dict) else []
    messages = chat.get("chat_messages")
    events += [ChatEvent(at, "chat_messages", m) for m in messages or [] if isinstance(m, dict)]
    return events


def chat_metrics(tally: ChatTally, conversations: list[Conversation]) -> dict[str, Any]:
    return {"chats": len({c.chat_id for c in conversations if c.chat_id}),
            "chat_turns": tally.turns, "chat_turns_refused": tally.refused, "chat_stops": tally.stops,
            "chat_tool_posts": tally.tool_posts, "chat_polls": tally.polls,
            "chat_events": sum(len(c.events) for c in conversations),
            "chat_errors": tally.errors[:10],
            "chat_indeterminate": len(tally.indeterminate),
            "chat_indeterminate_requests": tally.indeterminate[:20]}

