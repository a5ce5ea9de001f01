"""The observation record: one line of a history, its one encoder and decoder, and its fields."""

from __future__ import annotations

import json
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from harness.checks.headers import header_int

# `files` is POST /files, `upload` the PUT of the bytes, `download` the GET of a file URI.
# `agent_run` is POST /agents/run, `chat` a chat read or its stream (no task: the task checks skip them).
Channel = Literal["run", "get", "status", "ndjson", "sse", "cancel", "delete", "list", "files",
                  "upload", "download", "agent_run", "chat"]
Outcome = Literal["ok", "timeout", "error"]
# What a stream observation is: an update, a heartbeat, the close by the server, or junk.
StreamKind = Literal["update", "heartbeat", "close", "invalid"]


def key_label(index: int) -> str:
    """The one name of the run's `index`-th key (0-based) in histories and reports: key1, key2, ...
    Never the key itself."""
    return f"key{index + 1}"


@dataclass(slots=True)
class Observation:
    """What one client saw in one request or one stream event.

    `send_ns`/`recv_ns` are CLOCK_MONOTONIC nanoseconds (comparable across processes of one
    machine); `wall` is epoch seconds at send, for merging histories of several machines.
    `recv_ns` is None and `outcome` not "ok" when the answer never came: indeterminate.
    """

    task: str | None
    observer: str
    channel: Channel
    send_ns: int
    recv_ns: int | None
    wall: float
    http: int | None = None
    status: Any = None
    output: bool | None = None
    error: bool | None = None
    updated_at: str | None = None
    outcome: Outcome = "ok"
    conn: str | None = None
    seq: int | None = None
    kind: StreamKind | None = None
    trail: list[int] | None = None
    key: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        """The one encoding of a history line: None fields left out, and `extra` when empty."""
        values = _values(self)
        data = {name: value for name, value in zip(_HEAD, values, strict=False) if value is not None}
        if values[-1]:
            data["extra"] = values[-1]
        return _encode(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Observation:
        # to_json drops None values, `task` and `recv_ns` included (a 429 run has no task, a
        # timeout no answer): they default to None.
        get = data.get
        try:
            # Positional, in field order: four times faster than filtering into keywords.
            return cls(get("task"), data["observer"], data["channel"], data["send_ns"], get("recv_ns"),
                       data["wall"], get("http"), get("status"), get("output"), get("error"),
                       get("updated_at"), get("outcome", "ok"), get("conn"), get("seq"), get("kind"),
                       get("trail"), get("key"), data["extra"] if "extra" in data else {})
        except KeyError:
            # A required field is missing: the keyword call raises the usual TypeError.
            return cls(**{"task": None, "recv_ns": None,
                          **{k: v for k, v in data.items() if k in _FIELD_SET}})


_FIELDS = tuple(Observation.__dataclass_fields__)
_FIELD_SET = frozenset(_FIELDS)
_HEAD = _FIELDS[:-1]  # every field but `extra`, which to_json handles on its own
# from_dict passes the fields by position: it must follow any change of the field list.
assert _FIELDS == ("task", "observer", "channel", "send_ns", "recv_ns", "wall", "http", "status",
                   "output", "error", "updated_at", "outcome", "conn", "seq", "kind", "trail", "key",
                   "extra"), "update Observation.from_dict"
_values = operator.attrgetter(*_FIELDS)  # every field's value, in one call
# What json.dumps(data, separators=(",", ":")) does, without building an encoder per call.
_encode = json.JSONEncoder(separators=(",", ":")).encode



def task_digest(task: Any) -> dict[str, Any]:
    """The fields of a task that the invariants need, read defensively from any JSON."""
    if not isinstance(task, dict):
        return {}
    events = task.get("events")
    trail = None
    if isinstance(events, list):
        trail = [e["status"] for e in events if isinstance(e, dict) and type(e.get("status")) is int]
    return {
        "status": task.get("status"),
        "output": task.get("output") is not None if "output" in task else None,
        "error": bool(task.get("error")) if "error" in task else None,
        "updated_at": task.get("updated_at") if isinstance(task.get("updated_at"), str) else None,
        "trail": trail,
    }


# Observation.extra fields of the rate-limit headers, with their default header names.
RATE_LIMIT_FIELDS = (("rl_remaining", "x-ratelimit-remaining"), ("rl_limit", "x-ratelimit-limit"),
                     ("rl_reset", "x-ratelimit-reset"), ("retry_after", "retry-after"))


def rate_limit_facts(header: Callable[[str], str | None], group: str,
                     fields: tuple[tuple[str, str], ...] = RATE_LIMIT_FIELDS) -> dict[str, Any]:
    """An answer's rate-limit headers as an observation's `extra`: each an integer, or the text
    (first 40 characters) under `<field>_raw` when it is not one. `header` looks a name up."""
    extra: dict[str, Any] = {"rl_group": group}
    for name, header_name in fields:
        raw = header(header_name)
        if raw is None:
            continue
        value = header_int(raw)
        if value is None:
            extra[f"{name}_raw"] = str(raw)[:40]
        else:
            extra[name] = value
    return extra

