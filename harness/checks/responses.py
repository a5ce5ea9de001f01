"""Sans-I/O rules for one response: status, headers and body in, Issues out.

Every response the suite sees (schemathesis cases, its probes, the suite's own probes) goes
through `check_exchange`. Nothing here does I/O or reads the clock: the exchange carries the
time it was received.
"""

from __future__ import annotations

import email.utils
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.checks.envelope import data_of, envelope_gaps, json_type, parse_json, problem_gaps
from harness.checks.headers import header_count
from harness.checks.issues import Issue
from harness.checks.ratelimit import remaining_problem, reset_value_problem, retry_after_problem
from harness.contract import Lifecycle, Limits

PROBLEM_JSON = "application/problem+json"
JSON_TYPES = ("application/json", PROBLEM_JSON)
NO_ENVELOPE = frozenset({"GET /healthz", "GET /files/{id}/{filename}"})
TASK_OPERATIONS = frozenset({"POST /apps/run", "GET /tasks/{id}", "POST /tasks/{id}/cancel"})
STATUS_OPERATIONS = frozenset({"GET /tasks/{id}/status"})
LIST_OPERATIONS = frozenset({"GET /tasks"})
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request and its complete response, as seen on the wire (never the key itself)."""

    method: str
    url: str
    path: str  # relative to the base URL, without the query
    status: int
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    received_at: float  # epoch seconds, local clock
    request_body: bytes | None = None
    request_headers: Mapping[str, str] = field(default_factory=dict)  # lower-case, no Authorization
    auth: str = "none"  # "key", "second", "other" or "none": what the Authorization header held

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    @property
    def media_type(self) -> str:
        return self.content_type.split(";", 1)[0].strip().lower()


class OperationTable:
    """Maps a method and a concrete path to the contract's operation ("GET /tasks/{id}")."""

    def __init__(self, templates: Iterable[str], error_media: Mapping[str, str] | None = None) -> None:
        # Operations whose errors are problems under another media type (x-error-media-type).
        self.error_media = dict(error_media or {})
        self._ops: list[tuple[str, str, re.Pattern[str]]] = []
        for op in templates:
            method, _, path = op.partition(" ")
            pattern = "^" + re.sub(r"\\\{[^/{}]+\\\}", "[^/]+", re.escape(path)) + "$"
            self._ops.append((method.upper(), op, re.compile(pattern)))
        # Literal paths before templated ones: /files must not be taken for /files/{id}/{name}.
        self._ops.sort(key=lambda item: item[1].count("{"))

    @classmethod
    def from_openapi(cls, document: Mapping[str, Any]) -> OperationTable:
        paths = document.get("paths", {})
        ops = {f"{method.upper()} {path}": op for path, item in paths.items()
               for method, op in item.items() if method in METHODS}
        return cls(ops, {key: op["x-error-media-type"] for key, op in ops.items()
                         if isinstance(op, dict) and "x-error-media-type" in op})

    def operation(self, method: str, path: str) -> str | None:
        method = method.upper()
        for op_method, op, pattern in self._ops:
            if op_method == method and pattern.match(path):
                return op
        return None


@dataclass(frozen=True)
class RuleSet:
    """What the rules need from the contract: lifecycle, limits (window scaled) and operations."""

    lifecycle: Lifecycle
    limits: Limits
    operations: OperationTable

    def group(self, operation: str | None) -> str | None:
        if operation is None:
            return None
        method, _, path = operation.partition(" ")
        return self.limits.group_of(method, path)


def status_problem(status: Any, lifecycle: Lifecycle) -> str | None:
    """Why a task status is not an integer code of the lifecycle, or None if it is."""
    if type(status) is not int:
        return f"status {json.dumps(status)} is a JSON {json_type(status)}, not an integer"
    if status not in lifecycle.statuses:
        return f"status {status} is not a code of the lifecycle {lifecycle.name!r}"
    return None


def sdk_status_hazard(status: Any) -> str | None:
    """How the official SDKs misread a status that is not a JSON integer (WIRE.md section 4)."""
    if isinstance(status, bool) or status is None:
        return None
    if isinstance(status, float):
        return (f"status {json.dumps(status)} is a float: the Python SDK's TaskStatus lookup fails and "
                "it reads Unknown (0), never terminal, so client.run() ends with 'Stream ended without "
                "completion'; the JS SDK compares numbers and is unaffected")
    if isinstance(status, str):
        if status.strip().lstrip("-").isdigit():
            return (f"status {json.dumps(status)} is a numeric string: parse_status in the Python SDK "
                    "(and parseStatus in JS) only maps status names, so both read Unknown (0): Python "
                    "run() never sees the end, JS run() waits forever")
        return (f"status {json.dumps(status)} is a string: both SDKs map the name, but they hand the "
                "value back unchanged, so user code comparing with TaskStatus integers breaks")
    return None


def task_statuses(operation: str | None, status: int, body: Any) -> list[tuple[Any, Any, Any]]:
    """(task id, status, status_text) of every task record in a 2xx body of a task operation."""
    if not 200 <= status < 300 or operation is None:
        return []
    data = data_of(body)
    if operation in TASK_OPERATIONS | STATUS_OPERATIONS and isinstance(data, dict) and "status" in data:
        return [(data.get("id"), data["status"], data.get("status_text"))]
    if operation in LIST_OPERATIONS and isinstance(data, list):
        return [(item.get("id"), item["status"], item.get("status_text")) for item in data
                if isinstance(item, dict) and "status" in item]
    return []


def check_exchange(ex: Exchange, rules: RuleSet) -> list[Issue]:
    """Every project rule that applies to one response."""
    operation = rules.operations.operation(ex.method, ex.path)
    issues: list[Issue] = []
    is_json = ex.media_type in JSON_TYPES or ex.media_type.endswith("+json")
    parsed_ok, body = parse_json(ex.body) if ex.body and is_json else (False, None)
    if ex.body and is_json and not parsed_ok:
        issues.append(Issue("CT-JSON-BODY", f"{ex.status} answer declares {ex.content_type!r} but its "
                            "body is not JSON: the Python SDK returns data=None, the JS SDK null, and "
                            "an error answer loses its detail", key=f"{ex.status}"))
    if 200 <= ex.status < 300:
        issues += _envelope(ex, operation, is_json, parsed_ok, body)
    elif ex.status >= 400:
        expected = rules.operations.error_media.get(operation or "", PROBLEM_JSON)
        issues += _problem(ex, parsed_ok, body, expected)
    issues += _rate_headers(ex, rules, operation)
    if parsed_ok:
        for task_id, status, _text in task_statuses(operation, ex.status, body):
            why = status_problem(status, rules.lifecycle)
            if why is not None:
                issues.append(Issue("CT-TASK-STATUS", why, key=json_type(status),
                                    task_id=task_id if isinstance(task_id, str) else None))
            hazard = sdk_status_hazard(status)
            if hazard is not None:
                issues.append(Issue("CT-SDK-STATUS-TYPE", hazard, key=json_type(status),
                                    task_id=task_id if isinstance(task_id, str) else None))
    return issues


def _envelope(ex: Exchange, operation: str | None, is_json: bool, parsed_ok: bool,
              body: Any) -> list[Issue]:
    if operation is None or operation in NO_ENVELOPE or ex.status == 204 or not ex.body or not is_json \
            or not parsed_ok:
        return []
    missing = envelope_gaps(body)
    if not missing:
        return []
    return [Issue("CT-ENVELOPE", f"{ex.status} body is not the success envelope: {'; '.join(missing)}. "
                  "The Python Agent requires success:true (RuntimeError('Request failed')), and a bare "
                  "DTO with its own `data` key would be unwrapped by mistake", key=";".join(missing))]


def _problem(ex: Exchange, parsed_ok: bool, body: Any, expected: str) -> list[Issue]:
    wrong = problem_gaps(ex.media_type, ex.content_type, parsed_ok, body, expected)
    if not parsed_ok or not isinstance(body, dict):
        body = {}
    issues = []
    if wrong:
        issues.append(Issue("CT-PROBLEM", f"{ex.status} answer is not a problem body: {'; '.join(wrong)}. "
                            "The SDKs show `detail` (else `title`, `message`, or the raw text) as the "
                            "error message", key=f"{ex.status}:{';'.join(wrong)}"))
    if "status" in body and body["status"] != ex.status:
        issues.append(Issue("CT-PROBLEM-STATUS", f"problem body says status {json.dumps(body['status'])} "
                            f"but the HTTP status is {ex.status}", key=f"{ex.status}:{body['status']}"))
    return issues


def _rate_headers(ex: Exchange, rules: RuleSet, operation: str | None) -> list[Issue]:
    group = rules.group(operation)
    if group is None or ex.status == 401 or not 200 <= ex.status < 500:
        return []
    limits = rules.limits
    names = limits.headers
    wrong: list[str] = []
    values: dict[str, int | None] = {}
    for role in ("limit", "remaining", "reset"):
        name = names[role]
        raw = ex.headers.get(name.lower())
        values[role] = header_count(raw)
        if raw is None:
            wrong.append(f"{name} is missing")
        elif values[role] is None:
            wrong.append(f"{name} {raw!r} is not a non-negative integer")
    limit, remaining, reset = values["limit"], values["remaining"], values["reset"]
    expected = limits.groups[group].limit
    if limit is not None and limit != expected:
        wrong.append(f"{names['limit']} is {limit}, the {group!r} group's limit is {expected}")
    issue = None if remaining is None else remaining_problem(remaining, refused=ex.status == 429,
                                                                 limit=expected)
    if issue is not None:
        wrong.append(f"{names['remaining']} {issue}")
    if reset is not None:
        now, clock = _server_now(ex)
        # `now` is whole seconds: Reset < now is past; the true time may be up to 1 s later.
        issue = reset_value_problem(reset, sent=now, answered=now, window_s=limits.window_seconds,
                                    past_slack_s=1.0, ahead_slack_s=2.0)
        if issue is not None:
            wrong.append(f"{names['reset']} {issue} ({clock} {now})")
    if ex.status == 429:
        retry = ex.headers.get(names["retry_after"].lower())
        if retry is None:
            wrong.append(f"{names['retry_after']} is missing on a 429")
        elif retry_after_problem(retry) is not None:
            wrong.append(f"{names['retry_after']} {retry!r} is not a whole number of seconds >= 1")
    if not wrong:
        return []
    return [Issue("CT-RATE-HEADERS", f"{ex.status} answer of the {group!r} group: {'; '.join(wrong)}. "
                  "The SDKs never read these headers (WIRE.md section 14), but every other client "
                  "paces itself by them", key=";".join(re.sub(r"\d+", "N", w) for w in wrong))]


def _server_now(ex: Exchange) -> tuple[int, str]:
    """The server's clock (its Date header) in whole seconds, else the local receive time."""
    date = ex.headers.get("date")
    if date:
        try:
            parsed = email.utils.parsedate_to_datetime(date)
            return int(parsed.timestamp()), "the response's Date"
        except (TypeError, ValueError):
            pass
    return int(ex.received_at) - 1, "the local clock"
