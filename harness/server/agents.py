"""Agent chats of the reference server: chats, messages, runs and tool invocations, driven live.

One run per user message: the scripted core model (`agent_model`) replies by streaming deltas,
or calls a tool first (a client tool waits in `awaiting_input` for `POST /tools/{id}`; a tool
that needs approval waits for approve/reject; a server-side tool runs here) and then answers
with its result. Every change is published to the chat's stream subscribers as typed events
(`chats`, `chat_messages`, `agent_runs`, `delta`). States follow the SDK's types
(`contracts/chat-lifecycle.yaml`). Phase durations divide by the server's --speed.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.server import agent_model as model
from harness.server.faults import Fault, Faults
from harness.server.interruptible import sleep_unless
from harness.server.timefmt import rfc3339

# Phase durations in seconds at --speed 1.
THINK_S = 1.0
TOKEN_S = 0.1
SERVER_TOOL_S = 0.3

ACTIVE_RUN_STATES = frozenset({"submitted", "working", "input_required", "auth_required"})
CLOSED_RUN_STATES = frozenset({"completed", "failed", "canceled", "rejected"})

Line = bytes | None  # one encoded stream event; None: the chat's run ended, close the stream


class AgentError(Exception):
    """A request the agent runtime refuses; becomes a problem answer."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


class _Stopped(Exception):
    """Raised inside a run's driver when the chat was stopped."""


def _id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


@dataclass
class Invocation:
    """One tool call of an assistant message."""

    id: str
    message_id: str
    call: model.ToolCall
    status: str
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    result: str | None = None
    rejected: str | None = None  # the reason, when a person rejected the call
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    call_id: str = field(default_factory=lambda: _id("call"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "chat_message_id": self.message_id, "tool_invocation_id": self.call_id,
            "type": self.call.tool.type, "display_name": self.call.tool.display_name or self.call.tool.name,
            "action": "", "function": {"name": self.call.tool.name, "arguments": self.call.arguments},
            "status": self.status, "result": self.result, "data": None,
            "created_at": rfc3339(self.created), "updated_at": rfc3339(self.updated),
        }


@dataclass
class Message:
    """One chat message; an assistant message grows by deltas while `pending`."""

    id: str
    chat_id: str
    run_id: str | None
    order: int
    role: str
    status: str
    text: str = ""
    files: list[str] = field(default_factory=list)
    error: str | None = None
    invocations: list[Invocation] = field(default_factory=list)
    seq: int = 0
    deltas: list[bytes] = field(default_factory=list)  # replayed to late subscribers while pending
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        content: list[dict[str, Any]] = [{"type": "text", "text": self.text}]
        if self.error is not None:
            content[0]["error"] = self.error
        content += [{"type": "file", "file": uri} for uri in self.files]
        return {
            "id": self.id, "chat_id": self.chat_id, "agent_run_id": self.run_id, "order": self.order,
            "status": self.status, "role": self.role, "content": content,
            "tool_call_id": None, "tool_invocations": [inv.to_dict() for inv in self.invocations],
            "created_at": rfc3339(self.created), "updated_at": rfc3339(self.updated),
        }


@dataclass
class Run:
    """One agent run: the work the agent does for one user message."""

    id: str
    chat_id: str
    user_message_id: str
    state: str = "submitted"
    error: str | None = None
    interrupt_reason: str | None = None
    interrupt_tool_id: str | None = None
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    finished: float | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_RUN_STATES

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "chat_id": self.chat_id, "user_message_id": self.user_message_id,
            "state": self.state, "error": self.error, "output": None,
            "finished_at": rfc3339(self.finished) if self.finished else None,
            "interrupt_reason": self.interrupt_reason, "interrupt_tool_id": self.interrupt_tool_id,
            "tool_invocation_id": self.interrupt_tool_id,
            "created_at": rfc3339(self.created), "updated_at": rfc3339(self.updated),
        }


@dataclass
class Chat:
    """A conversation with one agent, owned by one key."""

    id: str
    owner: str
    agent: str  # the template ref or the ad-hoc agent's name
    core_app: str
    system_prompt: str
    tools: dict[str, model.ToolSpec]
    context: dict[str, str]
    status: str = "idle"
    memory: model.Memory = field(default_factory=model.Memory)
    messages: list[Message] = field(default_factory=list)
    run: Run | None = None
    interrupts: list[dict[str, Any]] = field(default_factory=list)
    subscribers: list[asyncio.Queue[Line]] = field(default_factory=list)
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)

    def to_dict(self, with_messages: bool) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id, "status": self.status, "name": self.agent, "description": "",
            "output": None, "context": self.context, "agent_id": None,
            "active_run": self.run.to_dict() if self.run else None,
            "pending_interrupts": list(self.interrupts),
            "created_at": rfc3339(self.created), "updated_at": rfc3339(self.updated),
        }
        if with_messages:
            data["chat_messages"] = [m.to_dict() for m in self.messages]
        return data


@dataclass(frozen=True)
class Turn:
    """A user message as `POST /agents/run` takes it, already validated."""

    text: str
    files: list[str]
    attachments: tuple[model.Attachment, ...]


class AgentRuntime:
    """Owns every chat; drives each run from submitted to an end."""

    def __init__(self, speed: float, faults: Faults, dump: Callable[[Any], bytes],
                 retention_seconds: float = 3600.0, max_chats: int = 10_000) -> None:
        self.speed = speed
        self.retention_seconds = retention_seconds
        self.max_chats = max_chats
        self.faults = faults
        self._dump = dump
        self.chats: dict[str, Chat] = {}
        self.invocations: dict[str, tuple[Chat, Invocation]] = {}
        self._drivers: set[asyncio.Task[None]] = set()

    # -- requests ------------------------------------------------------------------------

    def new_chat(self, owner: str, agent: str, core_app: str, system_prompt: str,
                 tools: dict[str, model.ToolSpec], context: dict[str, str]) -> Chat:
        chat = Chat(_id("chat"), owner, agent, core_app, system_prompt, tools, context)
        self.chats[chat.id] = chat
        return chat

    def owned_chat(self, chat_id: str, key: str) -> Chat:
        chat = self.chats.get(chat_id)
        if chat is None or (chat.owner != key and Fault.CHAT_CROSS_KEY not in self.faults):
            raise AgentError(404, "chat_not_found", f"chat {chat_id} not found")
        return chat

    def owned_invocation(self, invocation_id: str, key: str) -> tuple[Chat, Invocation]:
        found = self.invocations.get(invocation_id)
        if found is None or (found[0].owner != key and Fault.CHAT_CROSS_KEY not in self.faults):
            raise AgentError(404, "tool_invocation_not_found",
                             f"tool invocation {invocation_id} not found")
        return found

    def send(self, chat: Chat, turn: Turn) -> tuple[Message, Message]:
        """Start a run for a user message; returns the user and the (pending) assistant message."""
        if chat.run is not None and chat.run.active:
            raise AgentError(409, "chat_busy",
                             f"chat {chat.id} is still answering (run {chat.run.state}); "
                             "stop it or wait for it to end")
        user = self._message(chat, None, "user", "ready", turn.text)
        user.files = list(turn.files)
        run = Run(_id("run"), chat.id, user.id)
        user.run_id = run.id
        chat.run = run
        assistant = self._message(chat, run.id, "assistant", "pending")
        self._set_chat(chat, "busy")
        self._publish_message(chat, user)
        self._publish_message(chat, assistant)
        self._publish_run(chat)
        driver = asyncio.get_running_loop().create_task(self._drive(chat, run, turn, assistant))
        self._drivers.add(driver)
        driver.add_done_callback(self._drivers.discard)
        return user, assistant

    def stop(self, chat: Chat) -> None:
        """Stop the chat's working run (nothing to do when none is active)."""
        if chat.run is not None and chat.run.active and Fault.STOP_IGNORED not in self.faults:
            chat.run.stop.set()

    def submit_result(self, chat: Chat, invocation: Invocation, result: str) -> None:
        _expect_waiting(invocation, "awaiting_input")
        invocation.result = result
        invocation.answered.set()

    def decide(self, chat: Chat, invocation: Invocation, approve: bool, reason: str = "") -> None:
        _expect_waiting(invocation, "awaiting_approval")
        if not approve:
            invocation.rejected = reason
        invocation.answered.set()

    def chat_json(self, chat: Chat) -> dict[str, Any]:
        """GET /chats/{id}: the chat with its messages in order (reversed with a fault)."""
        data = chat.to_dict(with_messages=True)
        if Fault.MESSAGES_REORDERED in self.faults:
            data["chat_messages"].reverse()
        return data

    # -- streams -------------------------------------------------------------------------

    def subscribe(self, chat: Chat) -> tuple[list[bytes], asyncio.Queue[Line] | None]:
        """The snapshot lines and, if the chat's run is still going, a queue of what follows.

        Messages come first and the `chats` event last: the Python SDK stops reading at the
        first `chats` event of an ended run, and must see the messages before it does. Deltas
        of a message still being written are replayed whole, so late readers can add them up.
        """
        lines = [self.event("chat_messages", m.to_dict()) for m in chat.messages]
        for message in chat.messages:
            if message.status == "pending":
                lines += message.deltas
        if chat.run is not None:
            lines.append(self.event("agent_runs", chat.run.to_dict()))
        lines.append(self.event("chats", chat.to_dict(with_messages=False)))
        if chat.run is None or not chat.run.active:
            return lines, None
        queue: asyncio.Queue[Line] = asyncio.Queue()
        chat.subscribers.append(queue)
        return lines, queue

    def unsubscribe(self, chat: Chat, queue: asyncio.Queue[Line]) -> None:
        if queue in chat.subscribers:
            chat.subscribers.remove(queue)

    def event(self, name: str, data: dict[str, Any]) -> bytes:
        return self._dump({"event": name, "data": data})

    # -- the run -------------------------------------------------------------------------

    async def _drive(self, chat: Chat, run: Run, turn: Turn, message: Message) -> None:
        try:
            await self._pause(run, THINK_S)
            self._set_run(chat, run, "working")
            move = model.turn(turn.text, chat.tools, chat.memory, turn.attachments)
            if Fault.AGENT_RUNS_FAIL in self.faults:
                move = model.Reply("I am sorry, ", error="the model is unavailable")
            redispatched = False
            while isinstance(move, model.ToolCall):
                call = move
                await self._say(chat, run, message, f"I will use the {call.tool.name} tool. ")
                invocation = await self._call_tool(chat, run, message, call)
                message = self._message(chat, run.id, "assistant", "pending")
                self._publish_message(chat, message)
                if Fault.TOOL_REDISPATCH in self.faults and not redispatched and call.tool.type == "client":
                    redispatched = True
                    continue
                result = invocation.result
                if Fault.TOOL_RESULT_IGNORED in self.faults and call.tool.type == "client":
                    result = None
                move = model.after_tool(call, result, invocation.rejected)
            await self._say(chat, run, message, move.text)
            if move.error is not None:
                message.error = move.error
                self._finish_message(chat, message, "failed")
                self._end(chat, run, "failed", move.error)
            else:
                self._finish_message(chat, message, "ready")
                self._end(chat, run, "completed")
        except _Stopped:
            for msg in (m for m in chat.messages if m.run_id == run.id):
                if msg.status == "pending":
                    self._finish_message(chat, msg, "cancelled")
                for inv in msg.invocations:
                    if inv.status not in ("completed", "failed", "cancelled"):
                        self._set_invocation(chat, msg, inv, "cancelled")
            chat.interrupts.clear()
            self._end(chat, run, "canceled")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug in the script must still end the run visibly
            self._end(chat, run, "failed", f"internal error: {type(exc).__name__}")

    async def _say(self, chat: Chat, run: Run, message: Message, text: str) -> None:
        """Stream `text` into a pending message, one delta per token."""
        for token in model.tokens(text):
            await self._pause(run, TOKEN_S)
            message.text += token
            message.seq += 1
            message.updated = time.time()
            line = self.event("delta", {"delta": {"response": token}, "seq": message.seq,
                                        "resource_id": message.id})
            message.deltas.append(line)
            if Fault.DELTA_GAP in self.faults and message.seq % 3 == 0:
                continue
            self._publish(chat, line)

    async def _call_tool(self, chat: Chat, run: Run, message: Message,
                         call: model.ToolCall) -> Invocation:
        """Make one tool call of `message` and wait for it to end (stop ends the wait)."""
        invocation = Invocation(_id("tinv"), message.id, call, "pending")
        message.invocations.append(invocation)
        self.invocations[invocation.id] = (chat, invocation)
        self._finish_message(chat, message, "ready")
        if call.tool.require_approval:
            self._set_invocation(chat, message, invocation, "awaiting_approval")
            chat.interrupts = [{
                "id": _id("intr"), "run_id": run.id, "chat_id": chat.id,
                "reason": "tool_approval", "source": "tool", "resource_id": invocation.id,
                "resource_type": "tool_invocation", "status": "pending",
                "meta": {"tool_invocation_id": invocation.id, "tool_name": call.tool.name,
                         "arguments": call.arguments},
            }]
            run.interrupt_reason, run.interrupt_tool_id = "tool_approval", invocation.id
            self._set_run(chat, run, "input_required", chat_status="awaiting_input")
            await self._until(run, invocation.answered)
            invocation.answered.clear()
            chat.interrupts = []
            run.interrupt_reason = run.interrupt_tool_id = None
            if invocation.rejected is not None:
                self._set_invocation(chat, message, invocation, "cancelled",
                                     result=f"rejected: {invocation.rejected}".rstrip(": "))
                self._set_run(chat, run, "working", chat_status="busy")
                return invocation
            self._set_run(chat, run, "working", chat_status="busy")
        if call.tool.type == "client":
            self._set_invocation(chat, message, invocation, "awaiting_input")
            self._set_chat(chat, "awaiting_input")
            if Fault.CHAT_IDLE_MID_RUN in self.faults:
                # The run looks ended to the Python SDK (it stops at this event).
                self._publish(chat, self.event("chats", {**chat.to_dict(with_messages=False),
                                                         "active_run": {**run.to_dict(),
                                                                        "state": "input_required"}}))
            await self._until(run, invocation.answered)
            self._set_chat(chat, "busy")
            self._set_invocation(chat, message, invocation, "completed", result=invocation.result)
            return invocation
        self._set_invocation(chat, message, invocation, "in_progress")
        await self._pause(run, SERVER_TOOL_S)
        self._set_invocation(chat, message, invocation, "completed",
                             result=model.server_tool_result(call))
        return invocation

    async def _pause(self, run: Run, seconds: float) -> None:
        """Sleep a scaled phase; raise _Stopped if the chat is stopped meanwhile."""
        if await sleep_unless(run.stop, seconds / self.speed):
            raise _Stopped

    async def _until(self, run: Run, event: asyncio.Event) -> None:
        """Wait for `event` (a tool's answer) or a stop, whichever comes first."""
        waiters = [asyncio.ensure_future(event.wait()), asyncio.ensure_future(run.stop.wait())]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        if run.stop.is_set():
            raise _Stopped

    # -- state changes, each published -----------------------------------------------------

    def _message(self, chat: Chat, run_id: str | None, role: str, status: str,
                 text: str = "") -> Message:
        message = Message(_id("msg"), chat.id, run_id, len(chat.messages), role, status, text)
        chat.messages.append(message)
        return message

    def _finish_message(self, chat: Chat, message: Message, status: str) -> None:
        message.status = status
        message.updated = time.time()
        message.deltas.clear()
        self._publish_message(chat, message)

    def _set_invocation(self, chat: Chat, message: Message, invocation: Invocation, status: str,
                        result: str | None = None) -> None:
        invocation.status = status
        if result is not None:
            invocation.result = result
        invocation.updated = message.updated = time.time()
        self._publish_message(chat, message)

    def _set_chat(self, chat: Chat, status: str) -> None:
        chat.status = status
        chat.updated = time.time()
        self._publish(chat, self.event("chats", chat.to_dict(with_messages=False)))

    def _set_run(self, chat: Chat, run: Run, state: str, chat_status: str | None = None) -> None:
        run.state = state
        run.updated = time.time()
        self._publish_run(chat)
        if chat_status is not None:
            self._set_chat(chat, chat_status)

    def _end(self, chat: Chat, run: Run, state: str, error: str | None = None) -> None:
        """The run's end: its last events, then every stream of the chat closes."""
        run.state, run.error = state, error
        run.finished = run.updated = time.time()
        self._publish_run(chat)
        if Fault.RUN_REOPENED in self.faults:
            self._publish(chat, self.event("agent_runs", {**run.to_dict(), "state": "working"}))
            self._publish_run(chat)
        self._set_chat(chat, "idle")
        for queue in chat.subscribers:
            queue.put_nowait(None)
        chat.subscribers.clear()

    def _publish_message(self, chat: Chat, message: Message) -> None:
        self._publish(chat, self.event("chat_messages", message.to_dict()))

    def _publish_run(self, chat: Chat) -> None:
        if chat.run is not None:
            self._publish(chat, self.event("agent_runs", chat.run.to_dict()))

    def _publish(self, chat: Chat, line: bytes) -> None:
        for queue in chat.subscribers:
            queue.put_nowait(line)

    def evict(self, now: float | None = None) -> int:
        """Drop chats without an active run that are older than the retention, or past the cap
        (oldest first): one client's chats must not grow the server's memory without bound."""
        now = time.time() if now is None else now
        idle = [c for c in self.chats.values() if c.run is None or not c.run.active]
        over = max(0, len(self.chats) - self.max_chats)
        gone = [c for c in idle if now - c.updated > self.retention_seconds]
        gone += sorted((c for c in idle if c not in gone), key=lambda c: c.updated)[:max(0, over - len(gone))]
        for chat in gone:
            self.chats.pop(chat.id, None)
            for message in chat.messages:
                for inv in message.invocations:
                    self.invocations.pop(inv.id, None)
        return len(gone)

    async def stop_all(self) -> None:
        for driver in list(self._drivers):
            driver.cancel()
        await asyncio.gather(*self._drivers, return_exceptions=True)


def _expect_waiting(invocation: Invocation, status: str) -> None:
    """Refuse an answer unless the call waits for one (409).

    An answer already given but not yet taken by the run also refuses: the status changes
    only when the run wakes, and a second answer in between must not pass.
    """
    if invocation.status != status or invocation.answered.is_set():
        shown = "already answered" if invocation.status == status else invocation.status
        raise AgentError(409, "invalid_transition",
                         f"tool invocation {invocation.id} is {shown}, not {status}")
