"""Request bodies of the agent endpoints (`POST /agents/run`, tool results, rejections)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

ToolType = Literal["app", "agent", "hook", "http", "call", "mcp", "client", "internal", "harness"]


class FileRef(BaseModel):
    """An attachment: a file uploaded with `POST /files` (the SDKs send uri, filename, content_type)."""

    model_config = ConfigDict(extra="allow", strict=True, defer_build=True)
    uri: str
    filename: str | None = None
    content_type: str | None = None
    id: str | None = None
    size: int | None = None


class MessageInput(BaseModel):
    """The user's message: Python sends `{text, attachments?}`, JS adds role, context, images, files."""

    model_config = ConfigDict(extra="allow", strict=True, defer_build=True)
    text: str | None = None
    attachments: list[FileRef] | None = None
    images: list[str] | None = None
    files: list[str] | None = None


class CoreApp(BaseModel):
    """The agent's core model: `{ref}` (the SDK's `CoreAppConfigInput`)."""

    model_config = ConfigDict(extra="allow", strict=True, defer_build=True)
    ref: str | None = None
    id: str | None = None
    version_id: str | None = None


class AgentTool(BaseModel):
    """One tool as the SDK's tool builder sends it (`tool(...).build()`)."""

    model_config = ConfigDict(extra="allow", strict=True, defer_build=True)
    name: str
    type: ToolType = "client"
    display_name: str | None = None
    description: str | None = None
    require_approval: bool | None = None


class AgentConfig(BaseModel):
    """An ad-hoc agent: `core_app: {ref}` (the SDK) or `core_app_ref` (the public docs)."""

    model_config = ConfigDict(extra="allow", strict=True, defer_build=True)
    name: str | None = None
    description: str | None = None
    system_prompt: str | None = None
    core_app: CoreApp | None = None
    core_app_ref: str | None = None
    tools: list[AgentTool] | None = None


class AgentRunRequest(BaseModel):
    """`POST /agents/run`: a template `agent` ref or an ad-hoc `agent_config` (+ `agent_name`)."""

    model_config = ConfigDict(extra="allow", strict=True, defer_build=True)
    chat_id: str | None = None
    input: MessageInput
    context: dict[str, str] | None = None
    agent: str | None = None
    agent_config: AgentConfig | None = None
    agent_name: str | None = None
    agent_id: str | None = None
    agent_version_id: str | None = None
    stream: bool | None = None


class ToolResult(BaseModel):
    """`POST /tools/{id}`: a client tool's result (a dict result arrives JSON-encoded)."""

    model_config = ConfigDict(extra="allow", strict=True, defer_build=True)
    result: str
    attachments: list[FileRef] | None = None


class ToolRejection(BaseModel):
    """`POST /tools/{id}/reject`."""

    model_config = ConfigDict(extra="allow", strict=True, defer_build=True)
    reason: str | None = None
