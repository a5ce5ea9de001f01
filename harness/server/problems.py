"""Error answers: problem+json bodies (RFC 9457) and the ApiError that handlers raise for them."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from harness.server.encoding import dump

ERROR_BASE = "https://api.inference.sh/errors/"
TITLES = {
    "bad_request": "Bad request",
    "unauthorized": "Invalid API key",
    "app_not_found": "App not found",
    "task_not_found": "Task not found",
    "file_not_found": "File not found",
    "not_found": "Not found",
    "method_not_allowed": "Method not allowed",
    "invalid_transition": "Invalid transition",
    "payload_too_large": "Payload too large",
    "validation_failed": "Input validation failed",
    "rate_limited": "Rate limited",
    "internal_error": "Internal server error",
}


class ApiError(Exception):
    """An error answer: becomes a problem+json response."""

    def __init__(self, status: int, code: str, detail: str,
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.extra = status, code, detail, extra or {}


def invalid(params: list[dict[str, str]]) -> ApiError:
    """A 422 `validation_failed` naming each bad parameter; the detail is the first one."""
    first = params[0]
    return ApiError(422, "validation_failed", f"{first['name']}: {first['reason']}",
                    {"invalid_params": params})


def problem(status: int, code: str, detail: str, extra: dict[str, Any] | None = None,
            headers: dict[str, str] | None = None, body_status: int | None = None,
            title: str | None = None) -> Response:
    """A problem+json answer; `body_status` and `title` override the body's (faults, never by default)."""
    title = title or TITLES.get(code, code.replace("_", " ").capitalize())
    body = {"type": ERROR_BASE + code, "title": title, "status": body_status or status,
            "detail": detail, "error": {"code": code, "message": detail}, **(extra or {})}
    return Response(dump(body), status, headers=headers, media_type="application/problem+json")
