"""httpx client for the task API, with incremental, deadline-bounded stream reading."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from harness.checks.envelope import data_of
from harness.net import deadline
from harness.net.bounded import ANSWER_DEADLINE_S, bounded_request, unanswered
from harness.net.decoders import NdjsonDecoder, SseDecoder, StreamEvent
from harness.net.hosts import file_policy
from harness.net.tls import policy

StreamFormat = Literal["ndjson", "sse"]
# Told of every request as it ends: (method, url, send monotonic ns, send epoch s, answer, error).
Recorder = Callable[[str, str, int, float, "httpx.Response | None", "BaseException | None"], None]
ACCEPT = {"ndjson": "application/x-ndjson", "sse": "text/event-stream"}


@dataclass
class TimedEvent:
    """A stream event with the monotonic time (seconds) it was decoded."""

    event: StreamEvent
    at: float


@dataclass
class StreamReading:
    """Everything read from one stream connection."""

    status_code: int
    content_type: str
    events: list[TimedEvent] = field(default_factory=list)
    closed_by_server: bool = False
    timed_out: bool = False
    error: str | None = None
    # No head came (a timeout before it): the error's name. Indeterminate: judged neither way.
    unanswered: str | None = None
    raw_tail: bytes = b""
    started: float = 0.0

    @property
    def updates(self) -> list[dict[str, Any]]:
        return [t.event.payload for t in self.events
                if t.event.kind == "update" and t.event.payload is not None]


class ForeignHost(Exception):
    """A URL the target handed out points at a host the harness may not send requests to."""


def json_of(response: httpx.Response) -> Any:
    """The answer's JSON body, None if it is not JSON."""
    try:
        return response.json()
    except ValueError:
        return None


def response_data(response: httpx.Response) -> Any:
    """The `data` of an enveloped JSON answer (or the bare body), None if not JSON."""
    body = json_of(response)
    return None if body is None else data_of(body)


class ApiClient:
    """One key's view of a target. Every method returns the raw httpx.Response."""

    def __init__(self, base_url: str, api_key: str | None, timeout: float = ANSWER_DEADLINE_S,
                 transport: httpx.BaseTransport | None = None) -> None:
        headers = {"Content-Type": "application/json", "User-Agent": "inference-harness/0.1"}
        if api_key is not None:
            headers["Authorization"] = f"Bearer {api_key}"
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout,
                                 transport=transport, verify=policy().context())
        self.deadline_s = timeout  # the whole answer, not each read
        self.recorder: Recorder | None = None

    def _bounded(self, client: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
        if self.recorder is None:
            return bounded_request(client, method, url, self.deadline_s, **kwargs)
        send, wall = time.monotonic_ns(), time.time()
        try:
            response = bounded_request(client, method, url, self.deadline_s, **kwargs)
        except httpx.HTTPError as exc:
            self.recorder(method, url, send, wall, None, exc)
            raise
        self.recorder(method, url, send, wall, response, None)
        return response

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self._bounded(self.http, method, path, **kwargs)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def run(self, body: dict[str, Any]) -> httpx.Response:
        return self._request("POST", "/apps/run", json=body)

    def get_task(self, task_id: str) -> httpx.Response:
        return self._request("GET", f"/tasks/{task_id}")

    def get_status(self, task_id: str) -> httpx.Response:
        return self._request("GET", f"/tasks/{task_id}/status")

    def cancel(self, task_id: str) -> httpx.Response:
        return self._request("POST", f"/tasks/{task_id}/cancel", content=b"")

    def delete(self, task_id: str, files: bool = False) -> httpx.Response:
        return self._request("DELETE", f"/tasks/{task_id}", params={"files": "true"} if files else None)

    def workers(self) -> httpx.Response:
        return self._request("GET", "/workers")

    def create_file(self, filename: str | None, content_type: str, size: int | None
                    ) -> httpx.Response:
        spec = {"uri": "", "filename": filename, "content_type": content_type, "path": None,
                "size": size, "public": None}
        return self._request("POST", "/files", json={"files": [spec]})

    def put_bytes(self, upload_url: str, data: bytes, content_type: str) -> httpx.Response:
        """PUT to an upload URL exactly as the SDKs do: only Content-Type, no Authorization."""
        refused = file_policy(self.base_url).refusal(upload_url)
        if refused is not None:
            raise ForeignHost(refused)
        with httpx.Client(timeout=self.http.timeout, verify=policy().context()) as bare:
            return self._bounded(bare, "PUT", upload_url, content=data,
                                 headers={"Content-Type": content_type})

    def download(self, uri: str) -> httpx.Response:
        refused = file_policy(self.base_url).refusal(uri)
        if refused is not None:
            raise ForeignHost(refused)
        with httpx.Client(timeout=self.http.timeout, verify=policy().context()) as bare:
            return self._bounded(bare, "GET", uri)

    def read_stream(self, task_id: str, fmt: StreamFormat, deadline_s: float,
                    on_event: Callable[[StreamEvent], None] | None = None) -> StreamReading:
        """Read a task stream incrementally until the server closes it or the deadline passes.

        `on_event` is called for each event as it is decoded (before the next read).
        """
        decoder: NdjsonDecoder | SseDecoder = NdjsonDecoder() if fmt == "ndjson" else SseDecoder()
        deadline.check_deadline()
        deadline_s = deadline.capped(deadline_s)
        start = time.monotonic()
        end = start + deadline_s
        # A silent server is cut by the read timeout, an endless one by the deadline check.
        timeout = httpx.Timeout(connect=5.0, read=deadline_s, write=5.0, pool=5.0)
        reading = StreamReading(0, "", started=start)
        path = f"/tasks/{task_id}/stream"
        send, wall = time.monotonic_ns(), time.time()
        headed = False
        try:
            with self.http.stream("GET", path,
                                  headers={"Accept": ACCEPT[fmt], "Accept-Encoding": "identity"},
                                  timeout=timeout) as response:
                headed = True
                if self.recorder is not None:  # a stream's latency is to its head, as under load
                    self.recorder("GET", self.base_url + path, send, wall, response, None)
                reading.status_code = response.status_code
                reading.content_type = response.headers.get("content-type", "")
                if response.status_code != 200:
                    # An error answer is not a stream: keep its body as evidence, decode nothing.
                    reading.raw_tail = response.read()[-4096:]
                    reading.closed_by_server = True
                    return reading
                for chunk in response.iter_raw():
                    now = time.monotonic()
                    reading.raw_tail = (reading.raw_tail + chunk)[-4096:]
                    for event in decoder.feed(chunk):
                        reading.events.append(TimedEvent(event, now))
                        if on_event is not None:
                            on_event(event)
                    if now > end:
                        reading.timed_out = True
                        break
                else:
                    reading.closed_by_server = True
                    now = time.monotonic()
                    for event in decoder.close():
                        reading.events.append(TimedEvent(event, now))
                        if on_event is not None:
                            on_event(event)
        except httpx.HTTPError as exc:
            if not headed and self.recorder is not None:
                self.recorder("GET", self.base_url + path, send, wall, None, exc)
            if not headed and unanswered(exc):
                reading.unanswered = type(exc).__name__
            if isinstance(exc, httpx.ReadTimeout):
                reading.timed_out = True
            else:
                reading.error = f"{type(exc).__name__}: {exc}"
        return reading
