"""The schemathesis extension for contracts/openapi.yaml, for the plain CLI and the harness alike.

    schemathesis --config-file contracts/schemathesis.toml run contracts/openapi.yaml --url URL ...
    SCHEMATHESIS_HOOKS=harness.peers.schemathesis_hooks schemathesis run ...   (the same, by hand)

Loading it registers:

* deserializers for `application/x-ndjson` and `text/event-stream` that split a stream with
  `harness.net.decoders` (the parsers the suites, Locust users and SDK probes use), so every
  line or event of a stream answer is validated against the contract;
* a `before_load_schema` hook that reads the NDJSON `schema` as the contract states it: the
  schema of one line (`x-stream.line_schema`); a body is validated as the array of its lines;
* the harness's own per-response checks, each a thin call of its one rule in `harness.checks`:
  `harness_envelope`, `harness_problem`, `harness_rate_headers`, `harness_task_status` (through
  `checks.responses.check_exchange`) and `harness_stream` (`checks.streams.judge_stream`).
  A failure names its CT- check id (docs/checks.md) in its title;
* a `before_call` hook that reads an NDJSON answer as schemathesis reads an SSE one: to its end,
  or for the operation's request timeout in total, then the stream counts as cut short.
  schemathesis reads any other body to its end, and a chat stream stays open while its run waits
  for a person's approval or a client tool's result: the CLI would wait forever.

`configure()` is for library callers (the contract suite): it sets the lifecycle and limits the
checks judge by (default: contracts/), and leaves the reading of streams to the caller's session.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import schemathesis
from schemathesis.core.failures import Failure, FailureGroup, Severity
from schemathesis.core.transport import DEFAULT_RESPONSE_TIMEOUT, STREAM_CUT_SHORT_ATTRIBUTE
from urllib3.exceptions import ProtocolError, ReadTimeoutError

from harness.checks.issues import CHECKS, Issue
from harness.checks.responses import Exchange, OperationTable, RuleSet, check_exchange
from harness.checks.streams import Requested, StreamLineSchema, capture_of, judge_stream
from harness.contract import Lifecycle, Limits, load_lifecycle, load_limits
from harness.net.decoders import NdjsonDecoder, SseDecoder

__all__ = ["CHECK_IDS", "NDJSON", "SSE", "STREAM_OPERATION", "ContractRuleFailure", "configure"]

NDJSON = "application/x-ndjson"
SSE = "text/event-stream"
STREAM_OPERATION = "GET /tasks/{id}/stream"
_Case = schemathesis.Case[Any]
_LINES_MARK = "x-harness-ndjson-lines"  # set on a wrapped schema, so a second load does not wrap again
# Imported as a module object: requests ships no type information, and types-requests is optional.
_requests: Any = importlib.import_module("requests")

# schemathesis check name -> the CT- ids it reports (one rule each, in harness.checks).
CHECK_IDS: dict[str, frozenset[str]] = {
    "harness_envelope": frozenset({"CT-JSON-BODY", "CT-ENVELOPE"}),
    "harness_problem": frozenset({"CT-PROBLEM", "CT-PROBLEM-STATUS"}),
    "harness_rate_headers": frozenset({"CT-RATE-HEADERS"}),
    "harness_task_status": frozenset({"CT-TASK-STATUS", "CT-SDK-STATUS-TYPE"}),
    "harness_stream": frozenset({c for c in CHECKS if c.startswith(("CT-STREAM", "CT-SDK"))}
                                | {"CT-TASK-STATUS"}) - {"CT-SDK-UPLOAD-AUTH"},
}
# A stream the reader cut short (max-stream-events, a time cap) has not ended: these judge an end.
_END_CHECKS = frozenset({"CT-STREAM-TERMINAL", "CT-SDK-STREAM-CLOSED-EARLY"})


class ContractRuleFailure(Failure):
    """A project rule broken by one response; `check` is its CT- id (docs/checks.md)."""

    kind_title = "Contract rule broken"

    def __init__(self, *, operation: str, issue: Issue, case_id: str | None = None) -> None:
        super().__init__(operation=operation, title=f"{issue.check}: {CHECKS[issue.check]}",
                         message=issue.message, case_id=case_id,
                         severity=Severity.HIGH if issue.severity == "error" else Severity.LOW)
        self.check = issue.check
        self.key = issue.key or issue.message

    @property
    def _unique_key(self) -> str:
        return f"{self.check}:{self.key}"


@dataclass
class _Judge:
    """What the checks judge by, and the contract's rules built from the schema under test."""

    lifecycle: Lifecycle | None = None
    limits: Limits | None = None
    read_streams: bool = True  # False: the caller's session reads (and caps) stream answers
    schema: Any = None  # the raw OpenAPI document the rules below were built from
    rules: RuleSet | None = None
    lines: StreamLineSchema | None = None

    def for_schema(self, raw: Any) -> tuple[RuleSet, StreamLineSchema]:
        if self.rules is None or self.lines is None or self.schema is not raw:
            self.rules = RuleSet(self.lifecycle or load_lifecycle(), self.limits or load_limits(),
                                 OperationTable.from_openapi(raw))
            self.lines = StreamLineSchema(raw)
            self.schema = raw
        return self.rules, self.lines


_JUDGE = _Judge()


def configure(lifecycle: Lifecycle | None = None, limits: Limits | None = None,
              read_streams: bool = False) -> None:
    """Judge by this lifecycle and these limits (None: the contract's own files). A library
    caller reads stream answers with its own session unless `read_streams`."""
    _JUDGE.lifecycle, _JUDGE.limits, _JUDGE.rules = lifecycle, limits, None
    _JUDGE.read_streams = read_streams


# -- reading streams ----------------------------------------------------------------------


@schemathesis.deserializer(NDJSON)
def deserialize_ndjson(ctx: schemathesis.DeserializationContext, response: schemathesis.Response) -> Any:
    """Every line of an NDJSON body, parsed; a line that is not a JSON object fails."""
    body = response.content
    if response.stream_cut_short:
        body = body[: body.rfind(b"\n") + 1]  # the line still arriving when the reader stopped
    decoder = NdjsonDecoder()
    lines = []
    for number, event in enumerate([*decoder.feed(body), *decoder.close()], 1):
        if event.kind == "invalid":
            why = event.reason or "not a JSON object"
            raise ValueError(f"NDJSON line {number} is {why}: {event.raw[:200]!r}")
        lines.append(event.payload)
    return lines


@schemathesis.deserializer(SSE)
def deserialize_sse(ctx: schemathesis.DeserializationContext, response: schemathesis.Response) -> Any:
    """The events of an SSE body as schemathesis models them (`data`, `event`, `id`); heartbeat
    comments are no events. Each event's `data` is then validated by the contract's event schema."""
    events = []
    for event in SseDecoder().feed(response.content):
        if event.kind == "heartbeat":
            continue
        if event.reason is not None:
            raise ValueError(f"SSE {event.reason}")
        item: dict[str, Any] = {"data": event.raw.decode("utf-8", "replace"),
                                "event": event.event_name or "message"}
        if event.event_id is not None:
            item["id"] = event.event_id
        events.append(item)
    return events


@schemathesis.hook
def before_load_schema(context: schemathesis.HookContext, raw_schema: dict[str, Any]) -> None:
    """The NDJSON schema describes one line (openapi.yaml says so): validate a body as its lines."""
    for content in _contents(raw_schema):
        media = content.get(NDJSON)
        if isinstance(media, dict) and isinstance(media.get("schema"), dict) \
                and not media["schema"].get(_LINES_MARK):
            media["schema"] = {"type": "array", "items": media["schema"], _LINES_MARK: True}


def _contents(node: Any) -> Iterator[dict[str, Any]]:
    """Every `content` map of responses in the document (paths and components alike)."""
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            content = current.get("content")
            if isinstance(content, dict):
                yield content
            stack.extend(v for k, v in current.items() if k != "content")
        elif isinstance(current, list):
            stack.extend(current)


@schemathesis.hook
def before_call(context: schemathesis.HookContext, case: _Case, kwargs: dict[str, Any]) -> None:
    """Have requests hand every answer to `_read_ndjson` before schemathesis reads its body."""
    if not _JUDGE.read_streams:
        return
    hooks = dict(kwargs.get("hooks") or {})
    response_hooks = hooks.get("response") or []
    hooks["response"] = [*(response_hooks if isinstance(response_hooks, list) else [response_hooks]),
                         _read_ndjson]
    kwargs["hooks"] = hooks


def _read_ndjson(response: Any, *args: Any, timeout: Any = None, **kwargs: Any) -> None:
    """Read an NDJSON body until it ends or the request timeout has passed in total (a quiet
    stream: until a read times out), as schemathesis reads SSE; a body cut so is marked cut short."""
    if _media_type(response.headers.get("content-type")) != NDJSON or not kwargs.get("stream"):
        return
    if isinstance(timeout, tuple):  # (connect, read): the read half bounds a stream
        timeout = timeout[1]
    deadline = time.monotonic() + float(timeout or DEFAULT_RESPONSE_TIMEOUT)
    chunks: list[bytes] = []
    cut = False
    try:
        while chunk := response.raw.read1(65536, decode_content=True):
            chunks.append(chunk)
            if time.monotonic() >= deadline:
                cut = True
                break
    except (ReadTimeoutError, TimeoutError):
        cut = True
    except ProtocolError as exc:  # broken off: what requests itself raises for it
        raise _requests.exceptions.ChunkedEncodingError(exc) from exc
    if cut:
        # The rest of the body is still coming on this connection: closed, not pooled (a pooled
        # one would hand its next chunk to the next request as a status line).
        response.raw.close()
        setattr(response, STREAM_CUT_SHORT_ATTRIBUTE, True)
    response._content = b"".join(chunks)
    response._content_consumed = True
    if cut:
        response.close()


def _media_type(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


# -- the project's checks -----------------------------------------------------------------


def _exchange(response: schemathesis.Response, case: _Case) -> Exchange:
    request = response.request
    body = request.body.encode("utf-8") if isinstance(request.body, str) else request.body
    base_path = urlsplit(case.operation.schema.get_base_url()).path.rstrip("/")
    path = urlsplit(str(request.url)).path
    if base_path and path.startswith(base_path):
        path = path[len(base_path):]
    keyed = any(k.lower() == "authorization" for k in request.headers)
    sent = {k.lower(): str(v) for k, v in request.headers.items() if k.lower() != "authorization"}
    return Exchange(
        method=str(request.method), url=str(request.url), path=path or "/", status=response.status_code,
        headers={k: ", ".join(v) for k, v in response.headers.items()}, body=response.content,
        received_at=time.time(), request_body=body if isinstance(body, bytes) else None,
        request_headers=sent, auth="key" if keyed else "none")


def _raise(issues: list[Issue], wanted: frozenset[str], case: _Case) -> None:
    failures = [ContractRuleFailure(operation=case.operation.label, issue=issue, case_id=case.id)
                for issue in issues if issue.check in wanted]
    if len(failures) == 1:
        raise failures[0]
    if failures:
        raise FailureGroup(list(failures))


def _response_rule(name: str) -> Any:
    wanted = CHECK_IDS[name]

    def check(ctx: schemathesis.CheckContext, response: schemathesis.Response,
              case: _Case) -> bool | None:
        rules, _ = _JUDGE.for_schema(case.operation.schema.raw_schema)
        _raise(check_exchange(_exchange(response, case), rules), wanted, case)
        return None

    check.__name__ = check.__qualname__ = name
    check.__doc__ = f"{', '.join(sorted(wanted))} (docs/checks.md), judged by harness.checks.responses."
    return schemathesis.check(check)


harness_envelope = _response_rule("harness_envelope")
harness_problem = _response_rule("harness_problem")
harness_rate_headers = _response_rule("harness_rate_headers")
harness_task_status = _response_rule("harness_task_status")


@schemathesis.check
def harness_stream(ctx: schemathesis.CheckContext, response: schemathesis.Response,
                   case: _Case) -> bool | None:
    """CT-STREAM-* and CT-SDK-* on a 200 stream answer, judged by harness.checks.streams."""
    if case.operation.label != STREAM_OPERATION or response.status_code != 200:
        return None
    rules, lines = _JUDGE.for_schema(case.operation.schema.raw_schema)
    content_type = ", ".join(response.headers.get("content-type", []))
    cut = response.stream_cut_short
    accept = str(response.request.headers.get("Accept") or "")
    cap = capture_of(response.content, requested=_requested(accept),
                     task_id=str((case.path_parameters or {}).get("id", "")), label=STREAM_OPERATION,
                     status=response.status_code, content_type=content_type, cut=cut)
    issues = judge_stream(cap, rules.lifecycle, lines, close_grace_s=float("inf"))
    if cut:
        issues = [i for i in issues if i.check not in _END_CHECKS
                  and not (i.check == "CT-STREAM-FIRST-SNAPSHOT" and not cap.events)]
    _raise(issues, CHECK_IDS["harness_stream"], case)
    return None


def _requested(accept: str | None) -> Requested:
    """Which framing an Accept header asks for, as the contract negotiates it."""
    text = (accept or "").lower()
    if NDJSON in text:
        return "ndjson"
    if SSE in text:
        return "sse"
    return "default"
