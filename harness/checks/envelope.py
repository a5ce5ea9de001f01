"""The API's wrappers: the `{success, data, messages}` envelope, stream updates, problem bodies.

How a body is unwrapped is decided here once; every suite and client reads `data` through it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def parse_json(body: bytes) -> tuple[bool, Any]:
    """(True, value) for a JSON body, (False, None) for anything else."""
    try:
        return True, json.loads(body)
    except (UnicodeDecodeError, ValueError):
        return False, None


def data_of(body: Any) -> Any:
    """What the SDKs take as the result: `data` of an object that has it, else the whole body."""
    return body["data"] if isinstance(body, dict) and "data" in body else body


def task_of_update(update: Mapping[str, Any]) -> Any:
    """The task inside a stream update: `data` when the update is a `{data, fields}` wrapper."""
    data = update.get("data")
    return data if isinstance(data, dict) and "fields" in update else update


def envelope_gaps(body: Any) -> list[str]:
    """What a 2xx JSON body lacks of the success envelope (empty: it is one)."""
    if not isinstance(body, dict):
        return [f"the body is a JSON {json_type(body)}, not an object"]
    gaps = []
    if body.get("success") is not True:
        gaps.append("`success` is not true")
    if "data" not in body:
        gaps.append("`data` is missing")
    if not isinstance(body.get("messages"), list):
        gaps.append("`messages` is not an array")
    return gaps


def problem_gaps(media_type: str, content_type: str, parsed_ok: bool, body: Any,
                 expected: str = "application/problem+json") -> list[str]:
    """What an error answer lacks of a problem body with the legacy `error` (empty: nothing).

    `expected` is the operation's error media type: problem+json, or application/json for the
    agent operations (the Python async Agent reads an error only from that)."""
    gaps: list[str] = []
    if media_type != expected:
        gaps.append(f"Content-Type is {content_type or 'missing'!r}, not {expected}")
    if not parsed_ok or not isinstance(body, dict):
        gaps.append("the body is not a JSON object")
        return gaps
    for name in ("type", "title", "detail"):
        if not isinstance(body.get(name), str):
            gaps.append(f"`{name}` is {'missing' if name not in body else 'not a string'}")
    if "status" not in body:
        gaps.append("`status` is missing")
    error = body.get("error")
    if not isinstance(error, dict) or not isinstance(error.get("code"), str) \
            or not isinstance(error.get("message"), str):
        gaps.append("the legacy `error: {code, message}` is missing or incomplete")
    return gaps


def problem_code(body: Any) -> str | None:
    """The error code of a problem body: the text after /errors/ in `type`, else `error.code`."""
    if not isinstance(body, dict):
        return None
    kind = body.get("type")
    if isinstance(kind, str) and "/errors/" in kind:
        return kind.rsplit("/errors/", 1)[1]
    error = body.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) else None


# The public docs' "Common errors", by the code the contract gives each (openapi.yaml's problem
# schemas carry the same titles as consts). The docs' fourth, "Task failed", is no HTTP answer:
# it is a Failed task's own `error` text, which ST-FAIL-ERROR judges.
DOCUMENTED_TITLES: dict[str, str] = {
    "unauthorized": "Invalid API key",
    "app_not_found": "App not found",
    "validation_failed": "Input validation failed",
}


def error_answer_gaps(status: int, body: Any, want_status: int, want_code: str) -> list[str]:
    """How an error answer differs from the wanted `want_status` problem of `want_code` (empty: not)."""
    gaps: list[str] = []
    if status != want_status:
        gaps.append(f"HTTP {status}, not {want_status}")
    if not isinstance(body, dict) or not {"type", "title", "status", "detail"} <= body.keys():
        gaps.append("the body is not a problem (type, title, status, detail)")
        return gaps
    code = problem_code(body)
    if code != want_code:
        gaps.append(f"the error code is {code!r}, not {want_code!r}")
    return gaps


def title_gap(body: Any, code: str) -> str | None:
    """How a problem's `title` differs from the docs' title for `code` (None: it matches)."""
    wanted = DOCUMENTED_TITLES[code]
    title = body.get("title") if isinstance(body, dict) else None
    if title == wanted:
        return None
    return f"title {title!r}, the docs say {wanted!r}"


def json_type(value: Any) -> str:
    """A decoded value's type as findings name it ("float", "string", "null", "int", "dict", ...)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    return type(value).__name__
