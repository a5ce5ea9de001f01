"""An ApiClient that writes an Observation for every request and every stream event."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import httpx

from harness.checks.envelope import task_of_update
from harness.history import (
    RATE_LIMIT_FIELDS,
    Channel,
    HistoryWriter,
    Observation,
    rate_limit_facts,
    task_digest,
)
from harness.net.bounded import unanswered
from harness.net.client import ApiClient, StreamFormat, StreamReading, response_data
from harness.net.decoders import StreamEvent

# Only Remaining: the report charts it; the rate-limit and load suites record every header.
_REMAINING = RATE_LIMIT_FIELDS[:1]


def rate_limit_extra(headers: Mapping[str, str], group: str | None) -> dict[str, Any]:
    """The rate-limit facts of an answer, as an observation's `extra` (for the report charts)."""
    if group is None or _REMAINING[0][1] not in headers:
        return {}
    return rate_limit_facts(headers.get, group, _REMAINING)


def channel_of(method: str, path: str) -> Channel:
    """The history channel of a request by its method and path (for exchanges without a task)."""
    if path.endswith("/agents/run"):
        return "agent_run"
    if "/chats/" in path:
        return "chat"
    if path.endswith("/stream"):
        return "ndjson"
    if path.endswith("/status"):
        return "status"
    if path.endswith("/cancel"):
        return "cancel"
    if path.endswith("/apps/run"):
        return "run"
    if method == "DELETE":
        return "delete"
    if method == "PUT":
        return "upload"
    if path.endswith("/files") and method == "POST":
        return "files"
    if "/tasks/" in path:
        return "get"
    return "download" if "/files/" in path else "list"


class ExchangeRecorder:
    """A suite's requests as Observations without a task: in the run's history (latency,
    throughput and rate-limit charts), left alone by the lifecycle checker, which judges tasks."""

    def __init__(self, history: HistoryWriter, observer: str, key_label: str | None) -> None:
        self.history, self.observer, self.key_label = history, observer, key_label

    def as_key(self, key_label: str | None) -> ExchangeRecorder:
        return ExchangeRecorder(self.history, self.observer, key_label)

    def __call__(self, method: str, url: str, send: int, wall: float, response: httpx.Response | None,
                 error: BaseException | None) -> None:
        if response is None:
            self.failed(method, url, send, wall, type(error).__name__,
                        timeout=error is not None and unanswered(error))
        else:
            self.answered(method, url, send, wall, response.status_code, response.headers)

    def answered(self, method: str, url: str, send: int, wall: float, status: int,
                 headers: Mapping[str, str], recv_ns: int | None = None) -> None:
        """An answer came (its head at `recv_ns`, default now); `headers` looked up in lower case."""
        path = httpx.URL(url).path
        channel = channel_of(method, path)
        if channel == "ndjson" and headers.get("content-type", "").startswith("text/event-stream"):
            channel = "sse"
        extra: dict[str, Any] = {"request": f"{method} {path}"}
        extra.update(rate_limit_extra(headers, RecordingClient.GROUPS.get(channel)))
        self.history.append(Observation(None, self.observer, channel, send,
                                        recv_ns if recv_ns is not None else time.monotonic_ns(), wall,
                                        http=status, key=self.key_label, extra=extra))

    def failed(self, method: str, url: str, send: int, wall: float, error: str, timeout: bool) -> None:
        """No complete answer: `timeout` when it never came (indeterminate), else a broken or cut one."""
        path = httpx.URL(url).path
        self.history.append(Observation(None, self.observer, channel_of(method, path), send, None, wall,
                                        outcome="timeout" if timeout else "error", key=self.key_label,
                                        extra={"request": f"{method} {path}", "error": error}))


class RecordingClient:
    """One observer: sequential requests, each recorded as it completes (or fails)."""

    GROUPS: ClassVar[dict[Channel, str]] = {"run": "run", "get": "get", "status": "get", "cancel": "get",
                                  "delete": "get", "list": "get", "ndjson": "get", "sse": "get"}

    def __init__(self, client: ApiClient, history: HistoryWriter, observer: str, key_label: str,
                 probe: str | None = None) -> None:
        self.client = client
        self.history = history
        self.observer = observer
        self.key_label = key_label
        self.probe = probe
        self._conns = 0
        self._token = secrets.token_hex(3)

    def _record(self, channel: Channel, task_id: str | None, send: int, wall: float,
                response: httpx.Response | None, error: str | None,
                extra: dict[str, Any] | None = None) -> Any:
        extra = dict(extra or {})
        if self.probe:
            extra["probe"] = self.probe
        if response is None:
            self.history.append(Observation(task_id, self.observer, channel, send, None, wall,
                                            outcome="timeout" if error == "timeout" else "error",
                                            key=self.key_label, extra={**extra, "error": error}))
            return None
        data = response_data(response)
        digest = task_digest(data) if channel not in ("status",) else {
            "status": data.get("status") if isinstance(data, dict) else None}
        if response.status_code >= 300:
            digest = {}
        if task_id is None and isinstance(data, dict) and isinstance(data.get("id"), str):
            task_id = data["id"]
        extra.update(rate_limit_extra(response.headers, self.GROUPS.get(channel)))
        self.history.append(Observation(task_id, self.observer, channel, send, time.monotonic_ns(), wall,
                                        http=response.status_code, key=self.key_label, extra=extra,
                                        **digest))
        return data

    def _call(self, channel: Channel, task_id: str | None, method: Any, *args: Any,
              extra: dict[str, Any] | None = None) -> tuple[httpx.Response | None, Any]:
        send, wall = time.monotonic_ns(), time.time()
        try:
            response = method(*args)
        except httpx.TimeoutException:
            self._record(channel, task_id, send, wall, None, "timeout", extra)
            return None, None
        except httpx.HTTPError as exc:
            self._record(channel, task_id, send, wall, None, f"{type(exc).__name__}: {exc}", extra)
            return None, None
        return response, self._record(channel, task_id, send, wall, response, None, extra)

    def run(self, body: dict[str, Any], deadline_s: float, **extra: Any
            ) -> tuple[httpx.Response | None, Any]:
        return self._call("run", None, self.client.run, body,
                          extra={"deadline_s": deadline_s, "app": body.get("app"), **extra})

    def get(self, task_id: str) -> tuple[httpx.Response | None, Any]:
        return self._call("get", task_id, self.client.get_task, task_id)

    def status(self, task_id: str) -> tuple[httpx.Response | None, Any]:
        return self._call("status", task_id, self.client.get_status, task_id)

    def cancel(self, task_id: str) -> tuple[httpx.Response | None, Any]:
        return self._call("cancel", task_id, self.client.cancel, task_id)

    def stream(self, task_id: str, fmt: StreamFormat, deadline_s: float) -> StreamReading:
        """Read a stream, recording each event; its send time is the connection's."""
        self._conns += 1
        # Unique across histories merged or appended from several runs and processes.
        conn = f"{self.observer}/{fmt}{self._conns}-{self._token}"
        send, wall = time.monotonic_ns(), time.time()
        seq = 0
        extra = {"probe": self.probe} if self.probe else {}

        def on_event(event: StreamEvent) -> None:
            nonlocal seq
            digest: dict[str, Any] = {}
            if event.kind == "update" and event.payload is not None:
                digest = task_digest(task_of_update(event.payload))
            self.history.append(Observation(task_id, self.observer, fmt, send, time.monotonic_ns(), wall,
                                            http=200, conn=conn, seq=seq, kind=event.kind,
                                            key=self.key_label, extra=extra, **digest))
            seq += 1

        reading = self.client.read_stream(task_id, fmt, deadline_s, on_event)
        if reading.unanswered:
            # The head never came: indeterminate (harness/net/bounded.unanswered), never judged.
            why = {"error": reading.error or "timeout"}
            self.history.append(Observation(task_id, self.observer, fmt, send, None, wall, outcome="timeout",
                                            key=self.key_label, extra={**extra, **why}))
        elif reading.status_code != 200:
            self.history.append(Observation(task_id, self.observer, fmt, send, time.monotonic_ns(), wall,
                                            http=reading.status_code or None, key=self.key_label,
                                            extra=extra, outcome="ok" if reading.status_code else "error"))
        elif reading.closed_by_server or reading.error is not None:
            # Cut after its head (a reset, a broken chunk) is the server's end of the stream, as
            # an SDK reads it: judged as a close (LC-STREAM-NO-TERMINAL before the terminal update).
            cut = {"cut": reading.error} if reading.error is not None else {}
            self.history.append(Observation(task_id, self.observer, fmt, send, time.monotonic_ns(), wall,
                                            http=200, conn=conn, seq=seq, kind="close",
                                            key=self.key_label, extra={**extra, **cut}))
        return reading
