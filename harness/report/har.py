"""failures.har: the exchanges behind the findings, for a browser's or a proxy's HAR viewer.

Two sources: each finding's evidence (every object with a `"request": "METHOD URL"` field,
nested ones included, with the status, headers and body excerpt it kept), and the history's
observations of the tasks findings name (method and path from the channel, status and timings).
The text passes through the redaction layer like every other output; bodies are the excerpts the
evidence holds, never more.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

from harness import __version__
from harness.findings import Finding, RunResult
from harness.history import HistoryError, Observation

MAX_ENTRIES = 2000
# The request an observation's channel stands for ({id}: its task).
CHANNEL_REQUESTS = {
    "run": ("POST", "/apps/run"), "get": ("GET", "/tasks/{id}"), "status": ("GET", "/tasks/{id}/status"),
    "ndjson": ("GET", "/tasks/{id}/stream"), "sse": ("GET", "/tasks/{id}/stream"),
    "cancel": ("POST", "/tasks/{id}/cancel"), "delete": ("DELETE", "/tasks/{id}"),
    "list": ("GET", "/tasks"), "files": ("POST", "/files"),
}


def _time(epoch: float | None) -> str:
    try:
        moment = datetime.fromtimestamp(epoch if epoch is not None else 0.0, UTC)
    except (OverflowError, OSError, ValueError):
        moment = datetime.fromtimestamp(0.0, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _headers(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, dict):
        return []
    return [{"name": str(k), "value": str(v)} for k, v in value.items() if v is not None]


def _entry(method: str, url: str, status: int | None, started: float | None, elapsed_ms: float | None,
           comment: str, headers: Any = None, body: Any = None, request_body: Any = None,
           mime: str = "") -> dict[str, Any]:
    text = body if isinstance(body, str) else None if body is None else json.dumps(body)
    sent = request_body if isinstance(request_body, str) else None
    waited = max(0.0, float(elapsed_ms)) if isinstance(elapsed_ms, int | float) else -1
    request: dict[str, Any] = {"method": method, "url": url, "httpVersion": "HTTP/1.1", "cookies": [],
                               "headers": [], "queryString": [], "headersSize": -1,
                               "bodySize": len(sent.encode()) if sent is not None else 0}
    if sent is not None:
        request["postData"] = {"mimeType": "application/json", "text": sent}
    if not mime and isinstance(headers, dict):
        mime = str(headers.get("content-type", ""))
    content: dict[str, Any] = {"size": len(text.encode()) if text is not None else 0, "mimeType": mime}
    if text is not None:
        content["text"] = text
    return {
        "startedDateTime": _time(started), "time": max(waited, 0.0), "comment": comment,
        "request": request,
        "response": {"status": status or 0, "statusText": "" if status else "no answer",
                     "httpVersion": "HTTP/1.1", "cookies": [], "headers": _headers(headers),
                     "content": content, "redirectURL": "", "headersSize": -1, "bodySize": -1},
        "cache": {}, "timings": {"send": 0, "wait": waited, "receive": 0},
    }


def _requests_in(value: Any) -> Iterator[dict[str, Any]]:
    """Every object in the evidence with a "METHOD URL" request field (depth-first)."""
    if isinstance(value, dict):
        if isinstance(value.get("request"), str) and " " in value["request"]:
            yield value
        for item in value.values():
            yield from _requests_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from _requests_in(item)


def _evidence_entries(finding: Finding, target: str) -> Iterator[dict[str, Any]]:
    for found in _requests_in(finding.evidence):
        method, _, url = str(found["request"]).partition(" ")
        status = found.get("status", found.get("http"))
        yield _entry(method, urljoin(target + "/", url.lstrip("/")) if url.startswith("/") else url,
                     status if isinstance(status, int) else None,
                     found.get("sent_at") if isinstance(found.get("sent_at"), int | float) else None,
                     None, f"{finding.check}: {finding.message}", found.get("headers"), found.get("body"),
                     found.get("request_body"), str(found.get("content_type", "")))


def _observation_entry(obs: Observation, target: str, comment: str) -> dict[str, Any] | None:
    known = CHANNEL_REQUESTS.get(obs.channel)
    if known is None:
        return None
    method, path = known
    elapsed = (obs.recv_ns - obs.send_ns) / 1e6 if obs.recv_ns is not None else None
    body = {"status": obs.status} if obs.status is not None else None
    return _entry(method, target + path.replace("{id}", obs.task or ""), obs.http, obs.wall, elapsed,
                  comment, body=body)


def failures_har(result: RunResult, history: Iterable[Observation] | None = None) -> dict[str, Any]:
    """The HAR document of the run's findings (an empty log when there are none)."""
    entries: list[dict[str, Any]] = []
    named: dict[str, str] = {}
    for finding in result.findings:
        entries.extend(_evidence_entries(finding, result.target))
        if finding.task_id:
            said = f"{finding.check}: {finding.message}"
            named[finding.task_id] = f"{named[finding.task_id]}; {said}" if finding.task_id in named else said
    if named and history is not None:
        try:
            for obs in history:
                if obs.task in named and obs.kind in (None, "close"):
                    entry = _observation_entry(obs, result.target, named[obs.task])
                    if entry is not None:
                        entries.append(entry)
                if len(entries) >= MAX_ENTRIES:
                    break
        except HistoryError:
            pass  # a damaged history: the evidence entries still stand
    entries.sort(key=lambda e: str(e["startedDateTime"]))
    return {"log": {"version": "1.2", "creator": {"name": "inference-harness", "version": __version__},
                    "pages": [], "entries": entries[:MAX_ENTRIES],
                    "comment": f"run {result.run_id}: the exchanges behind its findings"}}
