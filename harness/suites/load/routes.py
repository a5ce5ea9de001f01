"""The requests of the load users: each endpoint once (a Route), one call of it (a Request)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from harness.history import Channel

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True).encode


@dataclass(frozen=True, slots=True)
class Route:
    """An endpoint as the load users name it: history channel, metric, method, Locust name.

    `group` is its rate-limit budget (None: not budgeted); `expected` the non-2xx codes that are
    answers, not errors (a cancel's 409).
    """

    channel: Channel
    metric: str
    method: str
    name: str
    group: str | None = None
    expected: tuple[int, ...] = ()


RUN = Route("run", "run", "POST", "/apps/run", "run")
GET_TASK = Route("get", "get_task", "GET", "/tasks/{id}", "get")
STATUS = Route("status", "status", "GET", "/tasks/{id}/status", "get")
CANCEL = Route("cancel", "cancel", "POST", "/tasks/{id}/cancel", "get", expected=(409,))
LIST = Route("list", "list", "GET", "/tasks", "get")
CREATE_FILE = Route("files", "create_file", "POST", "/files", "upload")
UPLOAD = Route("upload", "upload", "PUT", "/upload/{token}")
DOWNLOAD = Route("download", "download", "GET", "/files/{id}/{name}")
AGENT_RUN = Route("agent_run", "agent_run", "POST", "/agents/run", "run")
CHAT_STREAM = Route("chat", "chat_stream", "GET", "/chats/{id}/stream", "get")
GET_CHAT = Route("chat", "get_chat", "GET", "/chats/{id}", "get")
TOOL_RESULT = Route("chat", "tool_result", "POST", "/tools/{id}", "get")
STOP_CHAT = Route("chat", "stop_chat", "POST", "/chats/{id}/stop", "get")


@dataclass(frozen=True, slots=True)
class Request:
    """One call of a route: its path (or an absolute URL), body, key, task and extra fields.

    `key` None is the user's own key. `headers` replace the key's (no Authorization, and the
    Observation gets no `key`). `extra` goes into the Observation's `extra`.
    """

    route: Route
    path: str
    payload: bytes | None = None
    key: int | None = None
    task_id: str | None = None
    extra: dict[str, Any] | None = None
    headers: dict[str, str] | None = None


def json_payload(body: Any) -> bytes:
    """A JSON request body, compact and ASCII-only."""
    return _dumps(body).encode()


_CONTRACT_ROUTES: dict[tuple[str, tuple[int, ...]], Route] = {}
# Operation -> (history channel, metric, rate-limit group) of the contract_mix scenario.
_CONTRACT_CHANNELS: dict[str, tuple[Channel, str, str | None]] = {
    "POST /apps/run": ("run", "run", "run"), "GET /tasks": ("list", "list", "get"),
    "GET /tasks/{id}": ("get", "get_task", "get"), "GET /tasks/{id}/status": ("status", "status", "get"),
    "POST /tasks/{id}/cancel": ("cancel", "cancel", "get"),
    "DELETE /tasks/{id}": ("delete", "delete", "get"), "POST /files": ("files", "create_file", "upload"),
}


def contract_route(operation: str, documented: set[int]) -> Route:
    """The route of a replayed contract case: every documented status but 429 and 5xx is an
    answer, not an error (a generated app name's 404, a refused input's 422)."""
    expected = tuple(sorted(c for c in documented if c != 429 and c < 500 and not 200 <= c < 300))
    key = (operation, expected)
    route = _CONTRACT_ROUTES.get(key)
    if route is None:
        channel, metric, group = _CONTRACT_CHANNELS[operation]
        method, _, template = operation.partition(" ")
        route = _CONTRACT_ROUTES[key] = Route(channel, metric, method, template, group, expected)
    return route
