"""The suite's own probes: streams read incrementally with deadlines, uploads as the SDKs do them,
and the observations behind the lifecycle-drift check.

All traffic goes through Traffic (pacing, budgets, the response rules). Streams are read on a
helper thread that hands chunks over a queue, so a silent, endless or half-closed stream never
holds the suite past its deadline.
"""

from __future__ import annotations

import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from harness.checks.envelope import data_of, parse_json, task_of_update
from harness.checks.issues import Issue
from harness.checks.responses import Exchange
from harness.checks.streams import (
    Requested,
    StreamCapture,
    StreamLineSchema,
    judge_stream,
    lenient_status,
)
from harness.contract import Lifecycle
from harness.net.bounded import bounded_request, unanswered
from harness.net.decoders import NdjsonDecoder, SseDecoder
from harness.net.hosts import file_policy
from harness.net.samples import PNG_1X1
from harness.net.tls import policy
from harness.suites.contract.traffic import (
    StopRun,
    TaskBudgetSpent,
    Traffic,
    exchange_evidence,
    repro_of,
    stamp,
)

ACCEPT = {"ndjson": "application/x-ndjson", "sse": "text/event-stream"}


# Checks only the probes judge (every other check is judged on every answer, or by schemathesis):
# when no probe judged one -- its app not mapped, the budget or time spent -- it is skipped, with why.
STREAM_CHECKS = ("CT-STREAM-MEDIA-TYPE", "CT-STREAM-LINE", "CT-STREAM-FIRST-SNAPSHOT", "CT-STREAM-ORDER",
                 "CT-STREAM-AFTER-TERMINAL", "CT-STREAM-TERMINAL", "CT-SDK-NDJSON-NON-JSON",
                 "CT-SDK-RAW-LINE-SEPARATOR", "CT-SDK-TERMINAL-WITHOUT-TASK", "CT-SDK-STREAM-CLOSED-EARLY")
UPLOAD_CHECKS = ("CT-SDK-UPLOAD-AUTH",)


@dataclass
class ProbeOptions:
    stream_deadline_s: float = 20.0
    close_grace_s: float = 1.0
    hold_s: float = 1.5  # how long the cancel probe keeps a running task's stream open
    request_timeout_s: float = 10.0
    apps: dict[str, dict[str, Any]] = field(default_factory=lambda: {
        "multi-phase": {"app": "infsh/image", "input": {"width": 2, "height": 2}},
        "quick": {"app": "infsh/echo", "input": {"message": "conformance"}},
        "failing": {"app": "infsh/fail", "input": {"message": "conformance failure"}},
        "long": {"app": "infsh/sleep", "input": {"seconds": 600}},
    })


@dataclass
class StatusBook:
    """What the target showed about its status codes: names (status_text) and roles."""

    names: dict[int, set[str]] = field(default_factory=dict)
    roles: dict[str, set[int]] = field(default_factory=dict)  # "completed" -> {terminal codes seen}

    def see(self, status: Any, status_text: Any, lifecycle: Lifecycle) -> None:
        code = lenient_status(status, lifecycle)
        if code is not None and isinstance(status_text, str) and status_text:
            self.names.setdefault(code, set()).add(status_text)

    def role(self, role: str, code: int | None) -> None:
        if code is not None:
            self.roles.setdefault(role, set()).add(code)


class Http:
    """httpx requests through Traffic; every answer becomes an Exchange the rules judge."""

    def __init__(self, traffic: Traffic, key: str, timeout_s: float) -> None:
        self.traffic = traffic
        self.key = key
        self.timeout_s = timeout_s  # one whole answer
        self.client = httpx.Client(base_url=traffic.base_url.rstrip("/"), verify=policy().context(),
                                   timeout=httpx.Timeout(timeout_s, connect=5.0))

    def close(self) -> None:
        self.client.close()

    def _auth(self, auth: bool) -> str:
        """Which key the history names for this client's requests (a stranger's: none of the run's)."""
        if not auth:
            return "none"
        return "key" if self.key in self.traffic.keys[:1] else "other"

    def _headers(self, auth: bool, extra: dict[str, str] | None) -> dict[str, str]:
        headers = {"User-Agent": "inference-harness/0.1 (contract)"}
        if auth:
            headers["Authorization"] = f"Bearer {self.key}"
        headers.update(extra or {})
        return headers

    def call(self, method: str, url: str, json_body: Any = None, auth: bool = True,
             content: bytes | None = None, headers: dict[str, str] | None = None) -> Exchange | None:
        """One request; None if no complete answer came: a CT-TRANSPORT finding when the answer was
        cut or refused, an indeterminate count when it never came at all (a timeout)."""
        absolute = url if url.startswith(("http://", "https://")) else self.traffic.base_url.rstrip("/") + url
        body = content
        request_headers = dict(headers or {})
        if json_body is not None:
            body = _dumps(json_body)
            request_headers.setdefault("Content-Type", "application/json")
        for attempt in range(2):
            operation = self.traffic.before(method, absolute)
            sent = stamp()
            label = operation or f"{method} {self.traffic.relative_path(absolute)}"
            try:
                response = bounded_request(self.client, method, absolute, self.timeout_s, content=body,
                                           headers=self._headers(auth, request_headers))
            except httpx.HTTPError as exc:
                never, error = unanswered(exc), type(exc).__name__
                self.traffic.record_failure(method, absolute, sent, error, never, self._auth(auth))
                if never:
                    self.traffic.unanswered(label, f"{method} {absolute}", error)
                    return None
                self.traffic.collector.add(Issue("CT-TRANSPORT", f"no complete answer: {error}: "
                                                 f"{str(exc)[:300]}", key=error),
                                           label, {"request": f"{method} {absolute}", "sent_at": sent[1]})
                return None
            ex = _exchange(response, body, request_headers, "key" if auth else "none", self.traffic)
            wait = self.traffic.after(ex, operation, sent, auth=self._auth(auth))
            if ex.status != 429 or attempt:
                return ex
            time.sleep(wait)
        return None  # pragma: no cover

    def read_stream(self, task_id: str, requested: Requested, deadline_s: float, close_grace_s: float,
                    label: str, on_event: Callable[[StreamCapture], None] | None = None) -> StreamCapture:
        """Read one stream incrementally until it closes, the deadline passes, or the terminal
        update is followed by `close_grace_s` of the connection staying open."""
        cap = StreamCapture(requested, task_id, label, deadline_s=deadline_s)
        url = f"{self.traffic.base_url.rstrip('/')}/tasks/{task_id}/stream"
        extra = {"Accept-Encoding": "identity"}
        if requested != "default":
            extra["Accept"] = ACCEPT[requested]
        operation = self.traffic.before("GET", url)
        sent = stamp()
        started = time.monotonic()
        chunks: queue.Queue[tuple[str, Any]] = queue.Queue()
        with self._open(url, extra, chunks, deadline_s + 5.0):
            # The head is an answer like any other: it comes within the answer deadline.
            kind, value = _next(chunks, started + min(deadline_s, self.timeout_s))
            if kind != "headers":
                # No head: nothing of a stream to judge (judge_stream passes it). One that never
                # came is indeterminate, counted; a connection that broke is CT-TRANSPORT.
                never = kind == "timeout" or (kind == "error" and unanswered(value))
                error = "ReadTimeout" if kind == "timeout" else type(value).__name__
                self.traffic.record_failure("GET", url, sent, error, never)
                if never:
                    cap.unanswered = True
                    self.traffic.unanswered(operation or "GET /tasks/{id}/stream", f"GET {url}", error)
                else:
                    cap.error = _describe(value)
                    self._stream_transport(url, cap.error, operation)
                return cap
            head_ns = time.monotonic_ns()
            response: httpx.Response = value
            cap.status = response.status_code
            cap.content_type = response.headers.get("content-type", "")
            decoder: NdjsonDecoder | SseDecoder = (
                SseDecoder() if cap.content_type.lower().startswith("text/event-stream") else NdjsonDecoder())
            body = bytearray()
            end = started + deadline_s
            terminal_at: float | None = None
            while True:
                limit = end if terminal_at is None else min(end, terminal_at + close_grace_s)
                kind, value = _next(chunks, limit)
                now = time.monotonic() - started
                if kind == "chunk":
                    body += value
                    if cap.status != 200:
                        continue
                    for event in decoder.feed(value):
                        cap.events.append((now, event))
                        if terminal_at is None and self._is_terminal(event.payload, event.kind):
                            terminal_at = time.monotonic()
                        if on_event is not None:
                            on_event(cap)
                elif kind == "end":
                    cap.closed, cap.closed_at = True, now
                    break
                elif kind == "error":
                    cap.error = _describe(value)
                    self._stream_transport(url, cap.error, operation)
                    break
                else:
                    cap.timed_out = terminal_at is None
                    break
            if isinstance(decoder, NdjsonDecoder):
                cap.partial = bytes(decoder._buffer)
            if cap.status != 200:
                cap.body = bytes(body)
        ex = Exchange("GET", url, self.traffic.relative_path(url), cap.status,
                      {k.lower(): v for k, v in response.headers.items()},
                      bytes(body) if cap.status != 200 else b"", time.time(),
                      request_headers={k.lower(): v for k, v in extra.items()}, auth="key")
        self.traffic.after(ex, operation, sent, head_ns)  # a stream's latency is to its head
        return cap

    lifecycle: Lifecycle | None = None

    def _is_terminal(self, payload: Any, kind: str) -> bool:
        if kind != "update" or not isinstance(payload, dict) or self.lifecycle is None:
            return False
        task = task_of_update(payload)
        code = lenient_status(task.get("status") if isinstance(task, dict) else None, self.lifecycle)
        return code is not None and self.lifecycle.is_terminal(code)

    def _stream_transport(self, url: str, error: Any, operation: str | None) -> None:
        self.traffic.collector.add(Issue("CT-TRANSPORT", f"the stream broke off: {error}", key="stream"),
                                   operation or "GET /tasks/{id}/stream", {"request": f"GET {url}"})

    @contextmanager
    def _open(self, url: str, extra: dict[str, str], chunks: queue.Queue[tuple[str, Any]],
              read_timeout_s: float) -> Iterator[None]:
        stop = threading.Event()
        holder: list[httpx.Response] = []
        sockets: list[socket.socket] = []

        def trace(event: str, info: dict[str, Any]) -> None:
            # The stream's own socket, to wake the pump when the reader gives up on a head that
            # never came: no response exists yet to close, and closing a client does not
            # interrupt a blocked read (shutdown does). Without it the target would hold the
            # request, and the pump its thread, until the pump's read timeout.
            if event == "connection.connect_tcp.complete":
                sockets.append(info["return_value"].get_extra_info("socket"))
                if stop.is_set():
                    _shutdown(sockets)

        def pump() -> None:
            try:
                # A connection of its own (never a pooled one), so that `trace` sees it opened.
                with httpx.Client(verify=policy().context()) as client, \
                        client.stream("GET", url, headers=self._headers(True, extra),
                                      timeout=httpx.Timeout(read_timeout_s, connect=5.0),
                                      extensions={"trace": trace}) as response:
                    holder.append(response)
                    chunks.put(("headers", response))
                    for chunk in response.iter_raw():
                        if stop.is_set():
                            return
                        chunks.put(("chunk", chunk))
                chunks.put(("end", None))
            except Exception as exc:  # reported by the reader; the thread must never raise
                if not stop.is_set():
                    chunks.put(("error", exc))

        thread = threading.Thread(target=pump, daemon=True, name="contract-stream")
        thread.start()
        try:
            yield None
        finally:
            stop.set()
            if holder:
                try:
                    holder[0].close()
                except Exception:
                    pass
            else:
                _shutdown(sockets)
            # The reader stops at its next chunk or when the closed socket errors; never wait long.
            thread.join(timeout=0.2)


def _shutdown(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _next(chunks: queue.Queue[tuple[str, Any]], until: float) -> tuple[str, Any]:
    remaining = until - time.monotonic()
    if remaining <= 0:
        return "timeout", None
    try:
        return chunks.get(timeout=remaining)
    except queue.Empty:
        return "timeout", None


def _dumps(value: Any) -> bytes:
    import json

    return json.dumps(value, separators=(",", ":")).encode()


def _exchange(response: httpx.Response, body: bytes | None, headers: dict[str, str], auth: str,
              traffic: Traffic) -> Exchange:
    url = str(response.request.url)
    return Exchange(response.request.method, url, traffic.relative_path(url), response.status_code,
                    {k.lower(): v for k, v in response.headers.items()}, response.content, time.time(),
                    request_body=body, request_headers={k.lower(): v for k, v in headers.items()}, auth=auth)


class Prober:
    """Runs the probes; findings go to the traffic's collector, codes seen to `book`."""

    def __init__(self, traffic: Traffic, key: str, lifecycle: Lifecycle, schema: StreamLineSchema,
                 options: ProbeOptions, progress: Callable[[str], None]) -> None:
        self.traffic = traffic
        self.http = Http(traffic, key, options.request_timeout_s)
        self.http.lifecycle = lifecycle
        self.lifecycle = lifecycle
        self.schema = schema
        self.options = options
        self.progress = progress
        self.book = StatusBook()
        self.streams = 0
        self.uploads = 0  # upload probes that reached a verdict
        self.skipped: list[str] = []
        traffic.on_exchange.append(self._observe)

    def close(self) -> None:
        self.http.close()

    def _observe(self, ex: Exchange, operation: str | None) -> None:
        if not 200 <= ex.status < 300 or not ex.body:
            return
        ok, body = parse_json(ex.body)
        data = data_of(body) if ok else None
        records = data if isinstance(data, list) else [data]
        for record in records:
            if isinstance(record, dict) and "status" in record:
                self.book.see(record.get("status"), record.get("status_text"), self.lifecycle)

    def run(self) -> None:
        steps: list[tuple[str, Callable[[], None]]] = [
            ("live NDJSON stream", lambda: self.live("multi-phase", "ndjson", "completed")),
            ("live SSE stream", lambda: self.live("quick", "sse", "completed")),
            ("stream without Accept", lambda: self.live("quick", "default", "completed")),
            ("failing task stream", lambda: self.live("failing", "ndjson", "failed")),
            ("cancelled task stream", self.cancelled),
            ("upload as the SDKs do", self.upload),
            ("error answers", self.errors),
            ("read after write, delete then read", self.resources),
        ]
        for label, step in steps:
            if self.traffic.out_of_time():
                raise StopRun
            self.progress(f"contract: probe {label}")
            try:
                step()
            except TaskBudgetSpent:
                self.skipped.append(f"{label}: task budget (--max-tasks) spent")

    def unjudged(self, stopped: str | None = None) -> dict[str, str]:
        """The probe-only checks no probe judged, each with why (skipped, never passed)."""
        reasons = list(dict.fromkeys(self.skipped))  # each once, in order
        why = "; ".join(reasons) or (f"the run stopped early: {stopped}" if stopped
                                     else "no probe got that far")
        out: dict[str, str] = {}
        if not self.streams:
            out.update({check: f"no stream was probed: {why}" for check in STREAM_CHECKS})
        if not self.uploads:
            upload = "; ".join(r for r in reasons if r.startswith("upload")) or why
            out.update({check: f"the upload was not probed: {upload}" for check in UPLOAD_CHECKS})
        return out

    def _start(self, app: str) -> str | None:
        body = self.options.apps.get(app)
        if body is None:
            self.skipped.append(f"{app} app: the profile maps none ([apps.<role>] in harness.toml)")
            return None
        ex = self.http.call("POST", "/apps/run", body)
        if ex is None:
            return None
        ok, parsed = parse_json(ex.body)
        task = data_of(parsed) if ok else None
        if not 200 <= ex.status < 300 or not isinstance(task, dict) or not isinstance(task.get("id"), str):
            self.skipped.append(f"{app} app ({body['app']}): POST /apps/run answered {ex.status}")
            return None
        return str(task["id"])

    def _judge(self, cap: StreamCapture) -> None:
        if cap.headless:
            return  # counted as indeterminate, or reported as CT-TRANSPORT, by read_stream
        self.streams += 1
        url = f"{self.traffic.base_url.rstrip('/')}/tasks/{cap.task_id}/stream"
        headers = {} if cap.requested == "default" else {"Accept": ACCEPT[cap.requested]}
        ex = Exchange("GET", url, f"/tasks/{cap.task_id}/stream", cap.status, {}, b"", time.time(),
                      request_headers={k.lower(): v for k, v in headers.items()}, auth="key")
        evidence = {"request": f"GET {url}", "accept": headers.get("Accept", "(none)"),
                    "http_status": cap.status, "content_type": cap.content_type,
                    "events": [e.raw[:300].decode("utf-8", "replace") or f"<{e.kind}>"
                               for _, e in cap.events[:12]],
                    "closed_by_server": cap.closed, "timed_out": cap.timed_out, "error": cap.error}
        if cap.status != 200:
            evidence["body"] = cap.body[:600].decode("utf-8", "replace")
        for issue in judge_stream(cap, self.lifecycle, self.schema, self.options.close_grace_s):
            self.traffic.collector.add(issue, "GET /tasks/{id}/stream", evidence, repro_of(ex))
        for _, event in cap.events:
            if event.kind == "update" and event.payload is not None:
                task = task_of_update(event.payload)
                if isinstance(task, dict):
                    self.book.see(task.get("status"), task.get("status_text"), self.lifecycle)

    def _final(self, task_id: str) -> dict[str, Any] | None:
        """GET the task until it has ended (or the stream deadline passes)."""
        end = time.monotonic() + self.options.stream_deadline_s
        while True:
            ex = self.http.call("GET", f"/tasks/{task_id}")
            if ex is None or ex.status != 200:
                return None
            ok, body = parse_json(ex.body)
            task = data_of(body) if ok else None
            if not isinstance(task, dict):
                return None
            code = lenient_status(task.get("status"), self.lifecycle)
            if (code is not None and self.lifecycle.is_terminal(code)) or time.monotonic() > end:
                return task
            time.sleep(0.1)

    def live(self, app: str, requested: Requested, role: str) -> None:
        task_id = self._start(app)
        if task_id is None:
            return
        label = f"{self.options.apps.get(app, {}).get('app')} task, {role} while streaming"
        cap = self.http.read_stream(task_id, requested, self.options.stream_deadline_s,
                                    self.options.close_grace_s, label)
        self._judge(cap)
        final = self._final(task_id)
        if final is not None:
            self.book.role(role, lenient_status(final.get("status"), self.lifecycle))
        if requested == "ndjson" and role == "completed" and final is not None:
            # The same task again, now ended: a snapshot (the terminal update), then close.
            ended = self.http.read_stream(task_id, "ndjson", self.options.stream_deadline_s,
                                          self.options.close_grace_s,
                                          f"{self.options.apps.get(app, {}).get('app')} task, already ended")
            self._judge(ended)

    def cancelled(self) -> None:
        task_id = self._start("long")
        if task_id is None:
            return
        done = threading.Event()

        def cancel() -> None:
            if not done.is_set():
                try:
                    self.http.call("POST", f"/tasks/{task_id}/cancel", content=b"",
                                   headers={"Content-Type": "application/json"})
                except (StopRun, TaskBudgetSpent):
                    pass

        timer = threading.Timer(self.options.hold_s, cancel)
        timer.start()
        try:
            cap = self.http.read_stream(task_id, "ndjson", self.options.stream_deadline_s,
                                        self.options.close_grace_s,
                                        f"{self.options.apps.get('long', {}).get('app')} task, cancelled "
                                        "while streaming")
        finally:
            done.set()
            timer.cancel()
            timer.join()
        self._judge(cap)
        final = self._final(task_id)
        if final is not None:
            code = lenient_status(final.get("status"), self.lifecycle)
            self.book.role("cancelled", code)
            if code is None or not self.lifecycle.is_terminal(code):
                self.http.call("POST", f"/tasks/{task_id}/cancel", content=b"",
                               headers={"Content-Type": "application/json"})

    def upload(self) -> None:
        spec = {"uri": "", "filename": "conformance.png", "content_type": "image/png", "path": None,
                "size": len(PNG_1X1), "public": None}
        created = self.http.call("POST", "/files", {"files": [spec]})
        if created is None:
            return
        ok, body = parse_json(created.body)
        files = data_of(body) if ok else None
        if not 200 <= created.status < 300 or not isinstance(files, list) or not files \
                or not isinstance(files[0], dict):
            self.skipped.append(f"upload: POST /files answered {created.status} without a file array")
            return
        record = files[0]
        upload_url, uri = record.get("upload_url"), record.get("uri")
        where = "PUT upload_url"
        if not isinstance(upload_url, str) or not upload_url.startswith(("http://", "https://")):
            self.uploads += 1
            self.traffic.collector.add(Issue(
                "CT-SDK-UPLOAD-AUTH", f"upload_url {upload_url!r} is not an absolute http(s) URL: the Python "
                "SDK's requests.put raises (MissingSchema) and the upload fails; JS fetch resolves it "
                "against nothing and fails", key="relative"), where, exchange_evidence(created),
                repro_of(created))
            return
        refused = file_policy(self.traffic.base_url).refusal(upload_url)
        if refused is not None:
            self.skipped.append(f"upload: the upload URL: {refused}")
            return
        put = self.http.call("PUT", upload_url, auth=False, content=PNG_1X1,
                             headers={"Content-Type": "image/png"})
        if put is not None:
            self.uploads += 1
        if put is not None and not 200 <= put.status < 300:
            self.traffic.collector.add(Issue(
                "CT-SDK-UPLOAD-AUTH", f"PUT to upload_url without Authorization answered {put.status}. Both "
                "SDKs upload with only Content-Type (no key): Python raises RuntimeError('Failed to upload "
                "file content: ...'), JS throws Error('Failed to upload file content: ...')",
                key=f"put-{put.status}"), where, exchange_evidence(put), repro_of(put))
            return
        if isinstance(uri, str) and uri.startswith(("http://", "https://")):
            refused = file_policy(self.traffic.base_url).refusal(uri)
            if refused is not None:
                self.skipped.append(f"upload: the file's uri: {refused}")
                return
            got = self.http.call("GET", uri, auth=False)
            if got is not None and got.status != 200:
                self.traffic.collector.add(Issue(
                    "CT-SDK-UPLOAD-AUTH", f"GET of the file's uri without Authorization answered "
                    f"{got.status}: the docs download outputs with a plain requests.get(uri), and "
                    "input URIs must be fetchable by the app", key=f"get-{got.status}"), "GET uri",
                    exchange_evidence(got), repro_of(got))


    def resources(self) -> None:
        """A new task is readable at once (read-after-write); a deleted one is gone (404)."""
        task_id = self._start("quick")
        if task_id is None:
            return
        ex = self.http.call("GET", f"/tasks/{task_id}")
        if ex is not None and ex.status != 200:
            self.traffic.collector.add(Issue(
                "CT-RESOURCE-AVAILABILITY", f"GET /tasks/{{id}} right after POST /apps/run answered "
                f"{ex.status}: the Python SDK's run() reads the task at once and raises APIError on it",
                key=f"read-after-write-{ex.status}"), "GET /tasks/{id}", exchange_evidence(ex),
                repro_of(ex))
            return
        read = data_of(parse_json(ex.body)[1]) if ex is not None else None
        app = self.options.apps["quick"]["app"]
        if ex is not None and isinstance(read, dict) and (read.get("id"), read.get("app")) != (task_id, app):
            # A stateless target (a mock such as Prism serving the contract's examples) answers
            # every id with the same made-up task: the task just created is not found.
            self.traffic.collector.add(Issue(
                "CT-RESOURCE-AVAILABILITY", f"GET /tasks/{{id}} right after POST /apps/run of {app} "
                f"answered another task (id {read.get('id')!r}, app {read.get('app')!r}): the created "
                "task is not found; the target keeps no state (a mock serving examples?)",
                key="read-after-write-other"), "GET /tasks/{id}", exchange_evidence(ex), repro_of(ex))
            return
        if self._final(task_id) is None:
            return
        deleted = self.http.call("DELETE", f"/tasks/{task_id}")
        if deleted is None or not 200 <= deleted.status < 300:
            return
        again = self.http.call("GET", f"/tasks/{task_id}")
        if again is not None and again.status != 404:
            self.traffic.collector.add(Issue(
                "CT-USE-AFTER-FREE", f"DELETE /tasks/{{id}} answered {deleted.status} but the task still "
                f"reads {again.status}", key=f"deleted-{again.status}"), "GET /tasks/{id}",
                exchange_evidence(again), repro_of(again))

    def errors(self) -> None:
        """A few answers that must be errors: their bodies and headers go through the rules."""
        self.http.call("GET", "/tasks/task_harness_no_such_task")
        quick = self.options.apps.get("quick")
        invalid = {"app": quick["app"], "input": {"harness_unknown_field": 12345}} if quick else None
        ex = self.http.call("POST", "/apps/run", invalid) if invalid else None
        if ex is not None and ex.status >= 500:
            self.traffic.collector.add(Issue(
                "CT-SERVER-ERROR", f"input the app's schema refuses answered {ex.status} instead of 422: "
                "both SDKs raise APIError/InferenceError with a server-error message instead of the "
                "validation detail", key=f"{ex.status}"), "POST /apps/run", exchange_evidence(ex),
                repro_of(ex))
        stranger = Http(self.traffic, "inf_harness_not_a_real_key", self.options.request_timeout_s)
        try:
            wrong = stranger.call("GET", "/workers")
        finally:
            stranger.close()
        if wrong is not None and 200 <= wrong.status < 300:
            self.traffic.collector.add(Issue(
                "CT-IGNORED-AUTH", f"an unknown API key got {wrong.status} on GET /workers instead of 401",
                key="unknown-key"), "GET /workers", exchange_evidence(wrong),
                repro_of(wrong).replace('"Authorization: Bearer $INFERENCE_API_KEY"',
                                        '"Authorization: Bearer inf_harness_not_a_real_key"'))


def drift_issues(lifecycle: Lifecycle, wire: Lifecycle, book: StatusBook) -> list[Issue]:
    """A CT-LIFECYCLE-DRIFT issue per status code whose meaning differs from `lifecycle`.

    Observed meanings (the target's status_text, or the role a probe's task ended in) decide;
    for codes the probes never saw, the wire contract (contracts/lifecycle.yaml) stands in, and
    only when `lifecycle` is not that contract.
    """
    roles = {"completed": lifecycle.completed, "failed": lifecycle.failed, "cancelled": lifecycle.cancelled}
    observed: dict[int, tuple[str, str]] = {}
    for code, names in book.names.items():
        observed[code] = (" / ".join(sorted(names)), "the target's status_text")
    for role, codes in book.roles.items():
        for code in codes:
            observed.setdefault(code, (role, f"a probe task that {role} ended with it"))
    same_contract = lifecycle.statuses == wire.statuses
    issues: list[Issue] = []
    for code in sorted(set(lifecycle.statuses) | set(wire.statuses) | set(observed)):
        expected = lifecycle.statuses.get(code)
        if code in observed:
            actual, source = observed[code]
            if expected is None or expected.lower() not in actual.lower().split(" / "):
                issues.append(Issue("CT-LIFECYCLE-DRIFT", f"status {code}: the lifecycle {lifecycle.name!r} "
                                    f"calls it {expected or 'nothing (not a code of it)'}, the target "
                                    f"uses it for {actual!r} ({source})", key=str(code),
                                    evidence={"code": code, "lifecycle": lifecycle.name,
                                              "lifecycle_name": expected, "target_name": actual,
                                              "source": source}))
        elif not same_contract and wire.statuses.get(code) != expected:
            issues.append(Issue("CT-LIFECYCLE-DRIFT", f"status {code}: the lifecycle {lifecycle.name!r} "
                                f"calls it {expected or 'nothing'}, the wire contract ({wire.name}) "
                                f"{wire.statuses.get(code) or 'nothing'}; the target did not show this code "
                                "during the run", key=str(code), severity="warning",
                                evidence={"code": code, "lifecycle": lifecycle.name,
                                          "lifecycle_name": expected, "wire_name": wire.statuses.get(code),
                                          "source": "not observed"}))
    for role, code in roles.items():
        seen = book.roles.get(role, set())
        if seen and code not in seen and all(i.key != str(c) for c in seen for i in issues):
            issues.append(Issue("CT-LIFECYCLE-DRIFT", f"{role} is {code} in the lifecycle "
                                f"{lifecycle.name!r}, but a {role} probe task ended with {sorted(seen)}",
                                key=f"role-{role}"))
    return issues
