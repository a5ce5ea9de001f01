"""Sans-I/O rules for one task stream: a capture of decoded events in, Issues out.

The capture is made by `harness.suites.contract.probes` (incrementally, with a deadline); this
module only judges it: media type, line shapes, SDK hazards, snapshot first, order, terminal
last, close after it.
"""

from __future__ import annotations

import importlib
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from harness.checks.envelope import task_of_update
from harness.checks.issues import Issue
from harness.checks.responses import sdk_status_hazard, status_problem
from harness.contract import Lifecycle
from harness.net.decoders import NdjsonDecoder, SseDecoder, StreamEvent

Requested = Literal["ndjson", "sse", "default"]
SEPARATORS = {b"\xe2\x80\xa8": "U+2028", b"\xe2\x80\xa9": "U+2029", b"\xc2\x85": "U+0085"}
_DOC = "urn:harness:openapi"


@dataclass
class StreamCapture:
    """What one stream connection delivered, with timings relative to the request."""

    requested: Requested
    task_id: str
    label: str
    status: int = 0
    content_type: str = ""
    events: list[tuple[float, StreamEvent]] = field(default_factory=list)
    closed: bool = False  # the server ended the response
    timed_out: bool = False  # the suite stopped reading at its deadline
    error: str | None = None  # the connection broke
    unanswered: bool = False  # no head came by the answer deadline: indeterminate, never judged
    closed_at: float | None = None
    partial: bytes = b""  # bytes after the last line break when the stream ended
    body: bytes = b""  # the body of a non-200 answer
    deadline_s: float = 0.0

    @property
    def updates(self) -> list[tuple[float, StreamEvent]]:
        return [(t, e) for t, e in self.events if e.kind == "update"]

    @property
    def headless(self) -> bool:
        """No response head came (no status): there is no stream to judge. The reader says
        why: `unanswered` (indeterminate, counted) or `error` (the connection broke)."""
        return self.status == 0


def capture_of(body: bytes, *, requested: Requested, task_id: str, label: str, status: int,
               content_type: str, cut: bool) -> StreamCapture:
    """A capture of a stream read whole by someone else (schemathesis): the server closed it,
    unless the reader `cut` it short (then its last line may be incomplete and is left out)."""
    cap = StreamCapture(requested, task_id, label, status=status, content_type=content_type,
                        closed=not cut, timed_out=cut)
    if status != 200:
        cap.body = body
        return cap
    sse = content_type.split(";", 1)[0].strip().lower() == "text/event-stream"
    decoder = SseDecoder() if sse else NdjsonDecoder()
    cap.events = [(0.0, event) for event in decoder.feed(body)]
    if not sse and not cut:
        cap.partial = body[body.rfind(b"\n") + 1:]
    return cap


class StreamLineSchema:
    """Validates stream lines against the contract's StreamLine / TaskUpdate schemas."""

    def __init__(self, openapi: Mapping[str, Any]) -> None:
        # Imported here: only the contract suite validates lines, and `harness check-history`
        # or a Locust process reading the lifecycle rules should not pay for jsonschema.
        from referencing import Registry, Resource

        # jsonschema ships no type information (types-jsonschema is optional): a module object.
        jsonschema: Any = importlib.import_module("jsonschema")
        registry: Registry[Any] = Registry().with_resource(_DOC, Resource.from_contents(
            dict(openapi), default_specification=_draft()))
        self._line = jsonschema.Draft202012Validator({"$ref": f"{_DOC}#/components/schemas/StreamLine"},
                                          registry=registry)
        self._update = jsonschema.Draft202012Validator({"$ref": f"{_DOC}#/components/schemas/TaskUpdate"},
                                            registry=registry)

    def error(self, payload: Any, sse: bool) -> str | None:
        validator = self._update if sse else self._line
        best = None
        for err in validator.iter_errors(payload):
            if best is None or len(err.absolute_path) > len(best.absolute_path):
                best = err
        if best is None:
            return None
        where = "/".join(str(p) for p in best.absolute_path) or "(root)"
        return f"at {where}: {best.message[:300]}"


def _draft() -> Any:
    from referencing.jsonschema import DRAFT202012

    return DRAFT202012


def lenient_status(status: Any, lifecycle: Lifecycle) -> int | None:
    """A status read as generously as the structure checks need (types are judged elsewhere)."""
    if isinstance(status, bool):
        return None
    if isinstance(status, int):
        return status
    if isinstance(status, float) and status.is_integer():
        return int(status)
    if isinstance(status, str):
        text = status.strip().lower()
        if text.isdigit():
            return int(text)
        names = {name: code for code, name in lifecycle.statuses.items()}
        return names.get(text)
    return None


class StreamEnd:
    """The one rule of a stream's end: after the terminal update, nothing but heartbeats.

    Fed one event at a time (kind "update", "heartbeat", "invalid" or "close", and whether an
    update's status is terminal, as the caller reads statuses); every suite asks this object.
    """

    __slots__ = ("after", "count", "terminal_at")

    def __init__(self) -> None:
        self.terminal_at: int | None = None  # position of the terminal update
        self.after: list[int] = []  # positions of the events that broke the rule
        self.count = 0

    def feed(self, kind: str, terminal: bool = False) -> bool:
        """Take the next event; True if it breaks the rule (an update or junk after the end)."""
        position = self.count
        self.count += 1
        if self.terminal_at is not None:
            if kind in ("update", "invalid"):
                self.after.append(position)
                return True
            return False
        if kind == "update" and terminal:
            self.terminal_at = position
        return False


def judge_stream(cap: StreamCapture, lifecycle: Lifecycle, schema: StreamLineSchema,
                 close_grace_s: float) -> list[Issue]:
    """Every stream rule that applies to one capture (none to one without a head: an answer
    that never came is indeterminate, a refused or reset connection is the reader's to report)."""
    if cap.headless:
        return []
    fmt = "SSE" if cap.requested == "sse" else "NDJSON"
    wanted = "text/event-stream" if cap.requested == "sse" else "application/x-ndjson"
    accept = {"ndjson": "Accept: application/x-ndjson", "sse": "Accept: text/event-stream",
              "default": "no Accept header"}[cap.requested]
    issues: list[Issue] = []
    media = cap.content_type.split(";", 1)[0].strip().lower()
    if cap.status != 200:
        issues.append(Issue("CT-STREAM-MEDIA-TYPE", f"{cap.label}: the stream with {accept} answered HTTP "
                            f"{cap.status} instead of a 200 stream", key=f"http-{cap.status}"))
        return issues
    if media != wanted:
        issues.append(Issue("CT-STREAM-MEDIA-TYPE", f"{cap.label}: with {accept} the stream is "
                            f"{cap.content_type!r}, expected {wanted}", key=f"{cap.requested}:{media}"))
    elif wanted == "application/x-ndjson" and "charset" in cap.content_type.lower():
        issues.append(Issue("CT-STREAM-MEDIA-TYPE", f"{cap.label}: NDJSON declared with a charset "
                            f"({cap.content_type!r}); with it, Python requests' iter_lines decodes text and "
                            "also splits lines on U+2028/U+2029/U+0085", key="charset"))
    sse = media == "text/event-stream"
    issues += _line_rules(cap, lifecycle, schema, sse, fmt)
    issues += _order_rules(cap, lifecycle, close_grace_s, fmt)
    return issues


def _line_rules(cap: StreamCapture, lifecycle: Lifecycle, schema: StreamLineSchema, sse: bool,
                fmt: str) -> list[Issue]:
    issues: list[Issue] = []
    invalid = [e.raw[:200].decode("utf-8", "replace") for _, e in cap.events if e.kind == "invalid"]
    if invalid and not sse:
        issues.append(Issue("CT-SDK-NDJSON-NON-JSON", f"{cap.label}: {len(invalid)} NDJSON line(s) are not "
                            f"JSON objects (first: {invalid[0]!r}). The JS SDK JSON-parses every line and "
                            "rejects the whole run() with a SyntaxError; the Python SDK skips them",
                            key="non-json", evidence={"lines": invalid[:5]}))
    elif invalid:
        issues.append(Issue("CT-STREAM-LINE", f"{cap.label}: {len(invalid)} SSE data field(s) are not JSON "
                            f"objects (first: {invalid[0]!r}); the JS StreamManager JSON-parses every "
                            "data field", key="sse-non-json", evidence={"data": invalid[:5]}))
    if cap.partial.strip():
        issues.append(Issue("CT-STREAM-LINE", f"{cap.label}: the {fmt} stream ended inside a line "
                            f"({len(cap.partial)} bytes without a line break: "
                            f"{cap.partial[:120].decode('utf-8', 'replace')!r})", key="partial"))
    separators: set[str] = set()
    non_ascii = 0
    for _, event in cap.events:
        for seq, name in SEPARATORS.items():
            if seq in event.raw:
                separators.add(name)
        if any(b >= 0x80 for b in event.raw):
            non_ascii += 1
    if separators:
        names = ", ".join(sorted(separators))
        issues.append(Issue("CT-SDK-RAW-LINE-SEPARATOR", f"{cap.label}: {fmt} lines carry raw {names}. "
                            "Python requests' iter_lines(decode_unicode=True) splits lines on them when "
                            f"the response declares a charset ({cap.content_type!r} here): the pieces are "
                            "not JSON and the update is silently dropped (a dropped terminal line ends "
                            "client.run() with 'Stream ended without completion')", key=names))
    if non_ascii and not sse:
        issues.append(Issue("CT-STREAM-LINE", f"{cap.label}: {non_ascii} NDJSON line(s) are not "
                            "ASCII-only (the contract \\u-escapes every non-ASCII character)",
                            key="non-ascii"))
    previous_id: int | None = None
    for _, event in cap.events:
        if sse and event.kind == "heartbeat" and event.raw and event.event_name != "heartbeat":
            issues.append(Issue("CT-STREAM-LINE", f"{cap.label}: a heartbeat is sent as an unnamed SSE "
                                "data event; the JS StreamManager does not filter it and hands it on as "
                                "a task update (use a `: heartbeat` comment)", key="sse-data-heartbeat"))
        if sse and event.kind == "update":
            try:
                current = int(event.event_id) if event.event_id is not None else None
            except ValueError:
                current = None
            if current is None or (previous_id is not None and current <= previous_id):
                issues.append(Issue("CT-STREAM-LINE", f"{cap.label}: SSE event id {event.event_id!r} is "
                                    "not an integer increasing within the connection", key="sse-id"))
            previous_id = current if current is not None else previous_id
        if event.kind != "update" or event.payload is None:
            continue
        task = task_of_update(event.payload)
        status = task.get("status") if isinstance(task, dict) else None
        if isinstance(task, dict) and "status" in task:
            why = status_problem(status, lifecycle)
            if why is not None:
                issues.append(Issue("CT-TASK-STATUS", f"{cap.label} ({fmt}): {why}",
                                    key=f"stream:{type(status).__name__}", task_id=cap.task_id))
            hazard = sdk_status_hazard(status)
            if hazard is not None:
                issues.append(Issue("CT-SDK-STATUS-TYPE", f"{cap.label} ({fmt}): {hazard}",
                                    key=f"stream:{type(status).__name__}", task_id=cap.task_id))
        code = lenient_status(status, lifecycle)
        if code is not None and lifecycle.is_terminal(code) and _terminal_hazard(event.payload, lifecycle):
            continue  # judged as CT-SDK-TERMINAL-WITHOUT-TASK below, not twice
        error = schema.error(event.payload, sse)
        if error is not None:
            issues.append(Issue("CT-STREAM-LINE", f"{cap.label}: a {fmt} update does not match "
                                f"{'TaskUpdate' if sse else 'StreamLine'} {error}",
                                key=error.split(":", 1)[0], task_id=cap.task_id,
                                evidence={"line": event.raw[:600].decode("utf-8", "replace")}))
    return issues


def _terminal_hazard(payload: Mapping[str, Any], lifecycle: Lifecycle) -> list[str]:
    """What the Python SDK misses in a terminal update (it builds run()'s result from it alone)."""
    missing = []
    if not (isinstance(payload.get("data"), dict) and "fields" in payload):
        missing.append("the {data, fields} wrapper (Python then reads the whole line as the task)")
    task = task_of_update(payload)
    if not isinstance(task, dict):
        return ["a task object"]
    code = lenient_status(task.get("status"), lifecycle)
    for name in ("id", "created_at", "updated_at", "input"):
        if name not in task:
            missing.append(f"`{name}`")
    if code == lifecycle.completed and "output" not in task:
        missing.append("`output`")
    if code in (lifecycle.failed, lifecycle.rejected) and "error" not in task:
        missing.append("`error`")
    return missing


def _order_rules(cap: StreamCapture, lifecycle: Lifecycle, close_grace_s: float,
                 fmt: str) -> list[Issue]:
    issues: list[Issue] = []
    updates = cap.updates
    first = cap.events[0][1] if cap.events else None
    if first is None:
        what = "closed" if cap.closed else "timed out" if cap.timed_out else "broke off"
        issues.append(Issue("CT-STREAM-FIRST-SNAPSHOT", f"{cap.label}: the {fmt} stream {what} without "
                            "sending any event (a snapshot of the task comes first)", key="empty"))
    elif first.kind != "update" or first.payload is None or not _is_snapshot(first.payload, cap.task_id):
        shown = first.raw[:200].decode("utf-8", "replace") if first.raw else f"<{first.kind}>"
        issues.append(Issue("CT-STREAM-FIRST-SNAPSHOT", f"{cap.label}: the first {fmt} event is not a "
                            f"snapshot of the full task (`fields` naming every key of `data`): {shown!r}",
                            key="not-snapshot"))
    codes: list[int | None] = []
    for _, event in updates:
        task = task_of_update(event.payload or {})
        codes.append(lenient_status(task.get("status") if isinstance(task, dict) else None, lifecycle))
    seen = [c for c in codes if c is not None]
    for before, after in itertools.pairwise(seen):
        if not lifecycle.may_follow(before, after):
            issues.append(Issue("CT-STREAM-ORDER", f"{cap.label}: the {fmt} stream went from "
                                f"{lifecycle.label(before)} to {lifecycle.label(after)}",
                                key=f"{before}->{after}", evidence={"statuses": seen}))
            break
    terminal_at = next((i for i, c in enumerate(codes) if c is not None and lifecycle.is_terminal(c)), None)
    if terminal_at is None:
        if cap.error is not None:
            return issues  # a broken connection is a CT-TRANSPORT finding of the prober
        if cap.closed:
            issues.append(Issue("CT-SDK-STREAM-CLOSED-EARLY", f"{cap.label}: the {fmt} stream closed after "
                                f"statuses {seen} without a terminal update. JS run() never settles (no "
                                "reconnect, no GET); Python reconnects up to 5 times and falls back to GET",
                                key="closed", evidence={"statuses": seen}))
        else:
            issues.append(Issue("CT-STREAM-TERMINAL", f"{cap.label}: no terminal update within "
                                f"{cap.deadline_s:g} s on the {fmt} stream (statuses {seen}, "
                                f"{sum(1 for _, e in cap.events if e.kind == 'heartbeat')} heartbeats)",
                                key="no-terminal", evidence={"statuses": seen}))
        return issues
    terminal_time, terminal_event = updates[terminal_at]
    missing = _terminal_hazard(terminal_event.payload or {}, lifecycle)
    if missing:
        issues.append(Issue("CT-SDK-TERMINAL-WITHOUT-TASK", f"{cap.label}: the terminal {fmt} update lacks "
                            f"{', '.join(missing)}. The Python SDK builds client.run()'s result from the "
                            "terminal line alone (earlier updates are not merged), so the result comes "
                            "back without them (a completed run without output, a failure without its "
                            "message); JS merges partials and is unaffected",
                            key=",".join(missing), task_id=cap.task_id,
                            evidence={"terminal_line": terminal_event.raw[:600].decode("utf-8", "replace")}))
    end = StreamEnd()
    for _, event in cap.events:
        end.feed(event.kind, event is terminal_event)
    following = [cap.events[i][1] for i in end.after]
    if following:
        issues.append(Issue("CT-STREAM-AFTER-TERMINAL", f"{cap.label}: {len(following)} event(s) followed "
                            f"the terminal update on the {fmt} stream", key="after",
                            evidence={"after": [e.raw[:200].decode("utf-8", "replace")
                                                for e in following[:3]]}))
    if not cap.closed:
        issues.append(Issue("CT-STREAM-TERMINAL", f"{cap.label}: the server kept the {fmt} stream open "
                            f"more than {close_grace_s:g} s after the terminal update", key="not-closed"))
    elif cap.closed_at is not None and cap.closed_at - terminal_time > close_grace_s:
        issues.append(Issue("CT-STREAM-TERMINAL", f"{cap.label}: the server closed the {fmt} stream "
                            f"{cap.closed_at - terminal_time:.1f} s after the terminal update",
                            key="late-close"))
    return issues


def _is_snapshot(payload: Mapping[str, Any], task_id: str) -> bool:
    data, fields = payload.get("data"), payload.get("fields")
    if not isinstance(data, dict) or not isinstance(fields, list):
        return False
    return data.get("id") == task_id and set(data) <= {f for f in fields if isinstance(f, str)}
