"""The agent endpoints of the reference server: agent runs, chats, chat streams and tool calls.

Handlers only parse, authorise and answer; `agents.AgentRuntime` does the work. Errors are
problem bodies sent as `application/json`: the Python async Agent reads an error's message only
from that media type (WIRE.md section 13).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from harness.server import agent_model as model
from harness.server.agent_schemas import AgentRunRequest, FileRef, ToolRejection, ToolResult
from harness.server.agents import AgentError, AgentRuntime, Chat, Turn
from harness.server.apps import parse_ref
from harness.server.bodies import read_capped
from harness.server.chat_stream import ChatStream
from harness.server.config import ServerConfig
from harness.server.encoding import dump
from harness.server.files import FileStore
from harness.server.problems import ApiError, invalid
from harness.server.schemas import parse_body

Handler = Callable[[Request, str], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


class Host(Protocol):
    """What the agent routes need of the reference server (routes.ReferenceApi)."""

    config: ServerConfig
    files: FileStore

    def api(self, group: str, handler: Handler, json_errors: bool = False) -> Endpoint: ...

    def ok(self, data_json: bytes) -> Response: ...


# Template agents (`"agent": "infsh/<name>@<version>"`): core model, prompt and tools.
TEMPLATES: dict[str, tuple[str, str, dict[str, model.ToolSpec]]] = {
    "infsh/assistant": ("infsh/claude-sonnet-4", "You are a helpful assistant.", {}),
    "infsh/math-assistant": ("infsh/claude-sonnet-4", "You help with math.", {
        model.CALCULATOR: model.ToolSpec(model.CALCULATOR, "internal", display_name="Calculator")}),
    "infsh/careful-math-assistant": ("infsh/claude-sonnet-4", "You help with math, carefully.", {
        model.CALCULATOR: model.ToolSpec(model.CALCULATOR, "internal", require_approval=True,
                                         display_name="Calculator")}),
}
MAX_ATTACHMENTS = 20


class AgentRoutes:
    """Handlers of the agent endpoints over one runtime."""

    def __init__(self, host: Host, runtime: AgentRuntime) -> None:
        self.host, self.runtime = host, runtime

    async def _body(self, request: Request) -> bytes:
        return await read_capped(request, self.host.config.max_body_bytes, self.host.config.body_timeout)

    def _ok(self, data: Any) -> Response:
        return self.host.ok(dump(data))

    def _chat(self, request: Request, key: str) -> Chat:
        try:
            return self.runtime.owned_chat(request.path_params["id"], key)
        except AgentError as exc:
            raise ApiError(exc.status, exc.code, exc.detail) from exc

    # -- handlers ------------------------------------------------------------------------

    async def run(self, request: Request, key: str) -> Response:
        body = parse_body(await self._body(request), AgentRunRequest)
        turn = self._turn(body, key, str(request.base_url).rstrip("/"))
        if body.chat_id:
            chat = self._chat_by_id(body.chat_id, key)
        else:
            agent, core_app, prompt, tools = self._agent(body)
            chat = self.runtime.new_chat(key, agent, core_app, prompt, tools, body.context or {})
        try:
            user, assistant = self.runtime.send(chat, turn)
        except AgentError as exc:
            raise ApiError(exc.status, exc.code, exc.detail) from exc
        return self._ok({"user_message": user.to_dict(), "assistant_message": assistant.to_dict()})

    async def get_chat(self, request: Request, key: str) -> Response:
        return self._ok(self.runtime.chat_json(self._chat(request, key)))

    async def chat_status(self, request: Request, key: str) -> Response:
        chat = self._chat(request, key)
        return self._ok({"id": chat.id, "status": chat.status})

    async def stream(self, request: Request, key: str) -> Response:
        stream = ChatStream(self.runtime, self._chat(request, key),
                            self.host.config.heartbeat_interval)
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(stream, headers=headers, media_type=stream.media_type)

    async def stop(self, request: Request, key: str) -> Response:
        chat = self._chat(request, key)
        self.runtime.stop(chat)
        return self._ok(chat.to_dict(with_messages=False))

    async def tool_result(self, request: Request, key: str) -> Response:
        chat, invocation = self._invocation(request, key)
        body = parse_body(await self._body(request), ToolResult)
        self._guard(lambda: self.runtime.submit_result(chat, invocation, body.result))
        return self._ok(invocation.to_dict())

    async def approve(self, request: Request, key: str) -> Response:
        chat, invocation = self._invocation(request, key)
        self._guard(lambda: self.runtime.decide(chat, invocation, approve=True))
        return self._ok(invocation.to_dict())

    async def reject(self, request: Request, key: str) -> Response:
        chat, invocation = self._invocation(request, key)
        raw = await self._body(request)
        reason = parse_body(raw, ToolRejection).reason if raw.strip() else None
        self._guard(lambda: self.runtime.decide(chat, invocation, approve=False, reason=reason or ""))
        return self._ok(invocation.to_dict())

    # -- parts ---------------------------------------------------------------------------

    def _chat_by_id(self, chat_id: str, key: str) -> Chat:
        try:
            return self.runtime.owned_chat(chat_id, key)
        except AgentError as exc:
            raise ApiError(exc.status, exc.code, exc.detail) from exc

    def _invocation(self, request: Request, key: str) -> Any:
        try:
            return self.runtime.owned_invocation(request.path_params["id"], key)
        except AgentError as exc:
            raise ApiError(exc.status, exc.code, exc.detail) from exc

    @staticmethod
    def _guard(action: Callable[[], None]) -> None:
        try:
            action()
        except AgentError as exc:
            raise ApiError(exc.status, exc.code, exc.detail) from exc

    def _turn(self, body: AgentRunRequest, key: str, base_url: str) -> Turn:
        text = body.input.text or ""
        refs: list[FileRef] = list(body.input.attachments or [])
        if len(refs) > MAX_ATTACHMENTS:
            raise invalid([{"name": "body.input.attachments",
                            "reason": f"at most {MAX_ATTACHMENTS} attachments"}])
        uris = [ref.uri for ref in refs] + list(body.input.images or []) + list(body.input.files or [])
        attachments = []
        for index, uri in enumerate(uris):
            record = self.host.files.by_uri(uri, base_url)
            if record is None or record.owner != key or record.data is None:
                raise invalid([{"name": f"body.input.attachments.{index}.uri",
                                "reason": "not the URI of an uploaded file of this key"}])
            attachments.append(model.Attachment(record.filename or "", record.content_type))
        if not text.strip() and not attachments:
            raise invalid([{"name": "body.input.text", "reason": "a message needs text or attachments"}])
        return Turn(text, uris, tuple(attachments))

    def _agent(self, body: AgentRunRequest) -> tuple[str, str, str, dict[str, model.ToolSpec]]:
        """(agent name, core app, system prompt, tools) of a new chat's agent."""
        if body.agent is not None and body.agent_config is not None:
            raise invalid([{"name": "body.agent", "reason": "give agent or agent_config, not both"}])
        if body.agent is not None:
            ref = parse_ref(body.agent)
            if ref is None:
                raise invalid([{"name": "body.agent", "reason": "expected namespace/name[@version]"}])
            template = TEMPLATES.get(ref.name)
            if template is None:
                raise ApiError(404, "agent_not_found", f"agent {ref.name!r} not found")
            return (ref.name, *template)
        config = body.agent_config
        if config is None:
            raise invalid([{"name": "body.agent_config",
                            "reason": "give agent (a template ref) or agent_config"}])
        core_ref = config.core_app.ref if config.core_app else config.core_app_ref
        if core_ref is None:
            raise invalid([{"name": "body.agent_config.core_app.ref",
                            "reason": "the core model's app ref is required"}])
        parsed = parse_ref(core_ref)
        if parsed is None:
            raise invalid([{"name": "body.agent_config.core_app.ref",
                            "reason": "expected namespace/name[@version]"}])
        if parsed.name not in model.CORE_MODELS:
            raise ApiError(404, "app_not_found", f"core app {parsed.name!r} not found")
        tools = {t.name: model.ToolSpec(t.name, t.type, t.require_approval is True, t.display_name or "")
                 for t in config.tools or []}
        return (body.agent_name or config.name or "ad-hoc agent", parsed.name,
                config.system_prompt or "", tools)

    # -- the table -----------------------------------------------------------------------

    def routes(self, group_of: dict[str, str]) -> list[Route]:
        def api(op: str, handler: Handler) -> Endpoint:
            return self.host.api(group_of[op], handler, json_errors=True)

        return [
            Route("/agents/run", api("POST /agents/run", self.run), methods=["POST"]),
            Route("/chats/{id}", api("GET /chats/{id}", self.get_chat), methods=["GET"]),
            Route("/chats/{id}/status", api("GET /chats/{id}/status", self.chat_status),
                  methods=["GET"]),
            Route("/chats/{id}/stream", api("GET /chats/{id}/stream", self.stream), methods=["GET"]),
            Route("/chats/{id}/stop", api("POST /chats/{id}/stop", self.stop), methods=["POST"]),
            Route("/tools/{id}", api("POST /tools/{id}", self.tool_result), methods=["POST"]),
            Route("/tools/{id}/invoke", api("POST /tools/{id}/invoke", self.approve),
                  methods=["POST"]),
            Route("/tools/{id}/reject", api("POST /tools/{id}/reject", self.reject),
                  methods=["POST"]),
        ]

