"""Locust users for the task API (FastHttpUser): scenarios share one instrumented request path.

Every request is a Locust request event (Locust's stats and web UI work as usual) and an
Observation line of the run's history (the same fields `harness.history.Observation` reads),
and its latency goes into an HDR histogram (3 significant digits). Streams are read line by
line as they arrive and decoded by the sans-I/O parsers of `harness.net.decoders`; each event is
an Observation, and the stream's time to first event, time to terminal and heartbeat gaps
are histograms. Each task's queue time and setup latency (warm or cold) come from the server
timestamps of its events.

API keys: taken round-robin from HARNESS_API_KEYS; they travel only in request headers and
are never logged or written (observations carry a label, `k1`, `k2`, ...).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import urljoin, urlsplit

import gevent  # type: ignore[import-untyped]
from geventhttpclient.url import URL
from locust import FastHttpUser, constant, task
from locust.exception import CatchResponseError, StopUser

from harness.checks.envelope import task_of_update
from harness.history import task_digest
from harness.net.decoders import NdjsonDecoder, SseDecoder, StreamEvent
from harness.suites.load.open_model import Slot
from harness.suites.load.pacing import BudgetPacer
from harness.suites.load.session import Abort, LoadSession, session_of

log = logging.getLogger("harness.load")
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True).encode
monotonic_ns = time.monotonic_ns
ACCEPT = {"ndjson": "application/x-ndjson", "sse": "text/event-stream"}
TASK_CHANNELS = frozenset(("run", "get", "cancel"))
REDIRECTS = frozenset((301, 302, 303, 307, 308))  # answers the user agent follows
TERMINAL_GRACE_S = 2.0
USER_AGENT = "inference-harness-load/0.1"


@dataclass
class Answer:
    """What one request got: HTTP status (0: no answer), the `data` of the body, headers."""

    code: int
    data: Any = None
    headers: Any = None
    content: bytes = b""
    recv_ns: int = 0

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300


@dataclass
class StreamResult:
    terminal: dict[str, Any] | None = None
    terminal_ns: int = 0
    closed: bool = False
    timed_out: bool = False
    error: str | None = None
    events: int = 0
    nbytes: int = 0
    statuses: list[Any] = field(default_factory=list)


def _epoch(stamp: Any) -> float | None:
    if not isinstance(stamp, str):
        return None
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def task_phases(task: dict[str, Any], codes: dict[str, int]) -> tuple[float | None, float | None, bool]:
    """(queue ms, setup ms, cold) from a task's events: received->dispatched, dispatched->running.

    `codes` maps the lifecycle's status names to their numbers (contracts/lifecycle.yaml).
    """
    received, dispatched = codes.get("received", -1), codes.get("dispatched", -1)
    running, preparing = codes.get("running", -1), codes.get("preparing", -1)
    events = task.get("events")
    first: dict[int, float] = {}
    if isinstance(events, list):
        for event in events:
            if isinstance(event, dict) and type(event.get("status")) is int:
                at = _epoch(event.get("created_at") or event.get("event_time"))
                if at is not None and event["status"] not in first:
                    first[event["status"]] = at
    queue = (first[dispatched] - first[received]) * 1000 if {received, dispatched} <= first.keys() else None
    setup = (first[running] - first[dispatched]) * 1000 if {dispatched, running} <= first.keys() else None
    return queue, setup, preparing in first


class ApiUser(FastHttpUser):
    """Instrumented base user. Subclasses implement `scenario()` (one iteration)."""

    abstract = True
    wait_time = constant(0)
    network_timeout = 30.0
    connection_timeout = 10.0
    concurrency = 2
    expect_429: ClassVar[bool] = False
    limit_user: ClassVar[bool] = False

    hs: LoadSession
    key_index: int
    observer: str
    _intended: int
    _conns: int
    _headers: list[dict[str, str]]
    _stream_headers: dict[str, list[dict[str, str]]]

    # -- setup ---------------------------------------------------------------------------

    def on_start(self) -> None:
        session = self.hs = session_of(self.environment)
        if session.refused:
            raise StopUser()
        try:
            self.key_index = session.assign_key()
        except Abort as exc:
            log.error("harness: %s", exc)
            raise StopUser() from exc
        self.observer = session.new_observer()
        self._observer_json = _dumps(self.observer)
        self._tid: str | None = None
        self._tid_json = "null"
        self._intended = 0
        self._conns = 0
        self._pacers: dict[tuple[int, str], BudgetPacer] = {}
        self._base = (self.host or "").rstrip("/")
        agent: Any = self.client.client
        # Every status code is an answer to judge, not an exception (see `send`).
        agent.valid_response_codes = frozenset(range(100, 600))
        self._agent: Any = agent
        self._origin: Any = URL(self._base + "/")
        self._prefix = urlsplit(self._base).path.rstrip("/")
        self._request_event = self.environment.events.request
        # Few headers: building each one is a measurable share of a request's client CPU.
        self._headers = [{"Authorization": f"Bearer {key}"} for key in session.keys]
        self._json_headers = [{**h, "Content-Type": "application/json"} for h in self._headers]
        self._stream_headers = {
            fmt: [{**h, "Accept": accept, "Accept-Encoding": "identity", "Cache-Control": "no-cache",
                   "Connection": "close"} for h in self._headers] for fmt, accept in ACCEPT.items()}

    @task
    def iterate(self) -> None:
        session = self.hs
        if session.draining or session.refused:
            raise StopUser()
        intended = 0
        if session.arrivals is not None and not self.limit_user:
            turn = session.arrivals.wait_turn()
            if turn is None:
                raise StopUser()
            intended = turn
        start = intended or monotonic_ns()
        self._intended = intended
        session.busy += 1
        try:
            self.scenario()
        except Abort:
            return
        finally:
            session.busy -= 1
        if not self.limit_user:
            session.metrics.hdr.record_ns("iteration", monotonic_ns() - start)
            session.metrics.count("iterations")

    def scenario(self) -> None:
        raise NotImplementedError

    # -- the instrumented request ----------------------------------------------------------

    def pace(self, key: int, group: str) -> None:
        pacer = self.hs.pacer(key, group)
        while (until := pacer.try_acquire(time.time())) is not None:
            self.hs.sleep_until(until)

    def send(self, method: str, url: str, headers: dict[str, str], payload: bytes | None,
             api_path: str | None = None) -> tuple[Any, bytes, BaseException | None]:
        """One HTTP exchange on this user's connection pool: (response, body, transport error).

        A path of the API itself goes straight to the pooled HTTP client of the target's
        origin: no cookie jar (the API authenticates by key; the SDKs keep no cookies either),
        no per-request URL parsing, no retry loop -- a measurable share of the load
        generator's CPU per request. A redirect it gets is followed from its Location through
        the user agent of Locust's FastHttpSession (as are absolute URLs and paths that need
        quoting), never sent twice. Every status code is an answer, not an exception; the
        caller fires the Locust request event itself.
        """
        try:
            if api_path is not None:
                try:
                    client = self._agent.clientpool.get_client(self._origin)
                    raw = client.request(method, self._prefix + api_path, body=payload, headers=headers)
                except ValueError:  # not a valid request target as it stands: let the agent quote it
                    raw = None
                if raw is not None:
                    response = self._agent.response_type(raw, sent_request=raw._sent_request)
                    location = response.headers.get("location") if raw.status_code in REDIRECTS else None
                    if not isinstance(location, str) or not location:
                        return response, response.content or b"", None
                    response.release()
                    url = urljoin(url, location)
                    if raw.status_code == 303 or (raw.status_code in (301, 302) and method == "POST"):
                        method, payload = "GET", None  # as requests and the user agent do
                        headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
            response = self._agent.urlopen(url, method=method, headers=headers, payload=payload)
            return response, response.content or b"", None
        except Exception as exc:  # connection refused/reset, timeout, malformed HTTP
            return None, b"", exc

    def fire(self, method: str, name: str, started: float, elapsed_ms: float, length: int,
             response: Any, exception: BaseException | None, url: str) -> None:
        self._request_event.fire(request_type=method, name=name, response_time=elapsed_ms,
                                 response_length=length, response=response, context={},
                                 exception=exception, start_time=started, url=url)

    def call(self, channel: str, metric: str, method: str, path: str, *, name: str | None = None,
             body: Any = None, payload: bytes | None = None, key: int | None = None,
             group: str | None = None, task_id: str | None = None,
             extra: dict[str, Any] | None = None, headers: dict[str, str] | None = None,
             expected: tuple[int, ...] = (), parse: bool = True) -> Answer:
        """One request: pacing, a Locust request event, HDR latency, counters, an Observation."""
        session = self.hs
        metrics = session.metrics
        k = self.key_index if key is None else key
        wall = time.time()
        if group is not None and not self.limit_user:
            pacer = self._pacers.get((k, group))
            if pacer is None:
                pacer = self._pacers[(k, group)] = session.pacer(k, group)
            while (until := pacer.try_acquire(wall)) is not None:
                session.sleep_until(until)
                wall = time.time()
        intended, self._intended = self._intended, 0
        if body is not None:
            payload = _dumps(body).encode()
        absolute = path.startswith(("http://", "https://"))
        url = path if absolute else self._base + path
        label = name or metric
        send = monotonic_ns()
        if headers is None:
            headers_sent = self._headers[k] if payload is None else self._json_headers[k]
        else:
            headers_sent = headers
        response, content, error = self.send(method, url, headers_sent, payload,
                                             None if absolute else path)
        recv = monotonic_ns()
        elapsed_ms = (recv - send) / 1e6
        metrics.request(metric)
        metrics.hdr.record_ns(metric, recv - (intended or send))
        if response is None:
            kind = "timeout" if isinstance(error, TimeoutError | gevent.Timeout) else "error"
            reason = f"no answer ({type(error).__name__})"
            metrics.error(metric, reason, {"request": f"{method} {label}", "error": str(error)[:300],
                                           "task": task_id})
            self.fire(method, label, wall, elapsed_ms, 0, None, error, url)
            record: dict[str, Any] = {"task": task_id, "observer": self.observer, "channel": channel,
                                      "send_ns": send, "wall": wall, "outcome": kind,
                                      "extra": {**(extra or {}), "error": type(error).__name__}}
            if headers is None:
                record["key"] = f"k{k + 1}"
            session.emit({n: v for n, v in record.items() if v is not None})
            return Answer(0)
        code = response.status_code
        answer_headers = response.headers
        failure: BaseException | None = None
        data: Any = None
        fragment = ""
        good = 200 <= code < 300 or code in expected
        if good and channel in TASK_CHANNELS and 200 <= code < 300:
            data, fragment = session.digest("task", content, channel == "get")
            if task_id is None and isinstance(data, dict) and isinstance(data.get("id"), str):
                task_id = data["id"]
        elif good and channel == "status" and 200 <= code < 300:
            data, fragment = session.digest("status", content, True)
        elif parse and content:
            data = session.parse(content)
        remaining = answer_headers.get("x-ratelimit-remaining") if group is not None else None
        if good:
            if remaining == "0" and group is not None and not self.limit_user:
                session.pacer(k, group).spent(time.time())
        elif code == 429:
            metrics.limited(metric)
            if group is not None and not self.limit_user:
                session.pacer(k, group).spent(time.time())
            if not self.expect_429:
                failure = CatchResponseError("rate limited (429)")
        else:
            reason = f"HTTP {code}"
            metrics.error(metric, reason, {"request": f"{method} {label}", "status": code,
                                           "body": content[:300].decode("utf-8", "replace"),
                                           "task": task_id})
            failure = CatchResponseError(reason)
        self.fire(method, label, wall, elapsed_ms, len(content), response, failure, url)
        # The Observation line (the fields of harness.history.Observation), built directly.
        if extra or self.limit_user or code == 429 or (group is not None and remaining is not None
                                                         and not remaining.isdigit()):
            ex: dict[str, Any] = dict(extra) if extra else {}
            if group is not None:
                self._limit_facts(ex, answer_headers, group, code, data if code != 429
                                  else session.parse(content))
            tail = f',"extra":{_dumps(ex)}' if ex else ""
        elif remaining is not None:
            tail = f',"extra":{{"rl_group":"{group}","rl_remaining":{int(remaining)}}}'
        else:
            tail = ""
        if task_id != self._tid:
            self._tid = task_id
            self._tid_json = _dumps(task_id)
        key_part = f',"key":"k{k + 1}"' if headers is None else ""
        session.lines.append(
            f'{{"task":{self._tid_json},"observer":{self._observer_json},"channel":"{channel}",'
            f'"send_ns":{send},"recv_ns":{recv},"wall":{wall!r},"http":{code}{key_part}'
            f"{fragment}{tail}}}")
        return Answer(code, data, answer_headers, content, recv)

    def _limit_facts(self, ex: dict[str, Any], headers: Any, group: str, code: int, doc: Any) -> None:
        """Rate-limit headers into the observation (all of them in the limit scenarios)."""
        remaining = headers.get("x-ratelimit-remaining") if headers is not None else None
        if remaining is None:
            if self.limit_user or code == 429:
                ex["rl_group"] = group
                ex["rl_missing"] = True
            return
        ex["rl_group"] = group
        try:
            ex["rl_remaining"] = int(remaining)
        except ValueError:
            ex["rl_remaining_raw"] = str(remaining)
        if not (self.limit_user or code == 429):
            return
        for header, label in (("x-ratelimit-limit", "rl_limit"), ("x-ratelimit-reset", "rl_reset"),
                              ("retry-after", "retry_after")):
            value = headers.get(header)
            if value is not None:
                try:
                    ex[label] = int(value)
                except ValueError:
                    ex[label + "_raw"] = str(value)[:40]
        if code == 429:
            problem = isinstance(doc, dict) and (
                str(doc.get("type", "")).endswith("rate_limited")
                or (isinstance(doc.get("error"), dict) and doc["error"].get("code") == "rate_limited"))
            content_type = str(headers.get("content-type", ""))
            if not problem or "json" not in content_type:
                ex["rl_problem"] = False

    # -- task steps ----------------------------------------------------------------------

    def start_task(self, body: dict[str, Any], key: int | None = None) -> tuple[str, int, int] | None:
        """POST /apps/run within the task budget; (task id, run send ns, deadline ns) or None."""
        session = self.hs
        if not session.budget.take():
            session.metrics.count("budget_exhausted")
            if not self.limit_user:
                log.info("harness: the task budget (--max-tasks) is spent; this user stops")
                raise StopUser()
            return None
        deadline_s = session.config.deadline_s
        send = monotonic_ns()
        answer = self.call("run", "run", "POST", "/apps/run", name="/apps/run", body=body,
                           key=key, group="run", extra={"deadline_s": deadline_s,
                                                        "app": body.get("app")})
        task_id = answer.data.get("id") if answer.ok and isinstance(answer.data, dict) else None
        if not isinstance(task_id, str):
            if answer.code != 0:
                session.budget.refund()
            if answer.ok:
                session.metrics.error("run", "answer without a task id",
                                      {"body": answer.content[:300].decode("utf-8", "replace")})
            return None
        session.metrics.count("tasks_created")
        session.remember_task(self.key_index if key is None else key, task_id)
        return task_id, send, send + int(deadline_s * 1e9)

    def get_task(self, task_id: str) -> Answer:
        return self.call("get", "get_task", "GET", f"/tasks/{task_id}", name="/tasks/{id}",
                         group="get", task_id=task_id)

    def get_status(self, task_id: str) -> Answer:
        return self.call("status", "status", "GET", f"/tasks/{task_id}/status",
                         name="/tasks/{id}/status", group="get", task_id=task_id)

    def is_terminal(self, status: Any) -> bool:
        return type(status) is int and status in self.hs.terminal

    def finish_task(self, task: dict[str, Any] | None, terminal_ns: int, run_send: int) -> None:
        """Task metrics from the terminal task: end to end, queue, warm/cold setup."""
        if task is None:
            return
        hdr = self.hs.metrics.hdr
        if terminal_ns:
            hdr.record_ns("task.terminal", terminal_ns - run_send)
        queue, setup, cold = task_phases(task, self.hs.codes)
        if queue is not None:
            hdr.record_ms("task.queue", max(0.0, queue))
        if setup is not None:
            hdr.record_ms("task.setup_cold" if cold else "task.setup_warm", max(0.0, setup))

    def poll(self, task_id: str, deadline_ns: int, run_send: int, status_first: bool) -> None:
        """Poll to a terminal status (JS-SDK style: /status, full GET on each change)."""
        session = self.hs
        interval = session.config.poll_interval
        last: Any = None
        while True:
            if status_first:
                answer = self.get_status(task_id)
                status = answer.data.get("status") if isinstance(answer.data, dict) else None
                if answer.ok and status != last:
                    full = self.get_task(task_id)
                    if full.ok and isinstance(full.data, dict):
                        answer, status = full, full.data.get("status")
            else:
                answer = self.get_task(task_id)
                status = answer.data.get("status") if isinstance(answer.data, dict) else None
            if answer.ok:
                last = status
                if self.is_terminal(status) and isinstance(answer.data, dict):
                    self.finish_task(answer.data, answer.recv_ns, run_send)
                    return
            if monotonic_ns() >= deadline_ns:
                self.give_up(task_id)
                return
            session.sleep_until(time.time() + interval)

    def give_up(self, task_id: str) -> None:
        """Past the deadline without a terminal status: cancel it (it costs money) and move on."""
        self.hs.metrics.count("deadline_exceeded")
        self.call("cancel", "cancel", "POST", f"/tasks/{task_id}/cancel", name="/tasks/{id}/cancel",
                  payload=b"", group="get", task_id=task_id, extra={"cleanup": True},
                  expected=(409,))

    def settle(self, task_id: str, result: StreamResult, deadline_ns: int, run_send: int) -> None:
        """After a stream: a GET must agree with its terminal state; without one, poll."""
        if result.terminal is not None:
            self.get_task(task_id)
            self.finish_task(result.terminal, result.terminal_ns, run_send)
            return
        self.poll(task_id, deadline_ns, run_send, status_first=False)

    # -- streams ---------------------------------------------------------------------------

    def stream(self, task_id: str, fmt: str, deadline_ns: int) -> StreamResult:
        """Read a task stream line by line to its end (or the deadline), recording every event.

        One Locust request event per stream, fired when it ends: response time = time to the
        response headers (as Locust's stream=True does), length = the bytes read.
        """
        session = self.hs
        metrics = session.metrics
        metric = f"stream_{fmt}"
        name = f"/tasks/{{id}}/stream [{fmt}]"
        k = self.key_index
        self.pace(k, "get")
        self._conns += 1
        conn = f"{self.observer}/{fmt}{self._conns}"
        label = f"k{k + 1}"
        url = f"{self._base}/tasks/{task_id}/stream"
        result = StreamResult()
        wall = time.time()
        send = monotonic_ns()
        perf = time.perf_counter()
        try:
            response: Any = self._agent.urlopen(url, method="GET", headers=self._stream_headers[fmt][k])
            error: BaseException | None = None
        except Exception as exc:
            response, error = None, exc
        head = monotonic_ns()
        head_ms = (time.perf_counter() - perf) * 1000.0
        metrics.request(metric)
        metrics.hdr.record_ns(metric, head - send)
        code = response.status_code if response is not None else 0
        if code != 200:
            record: dict[str, Any] = {"task": task_id, "observer": self.observer, "channel": fmt,
                                      "send_ns": send, "wall": wall, "key": label}
            failure: BaseException | None
            content = b""
            if response is None:
                record["outcome"] = "error"
                metrics.error(metric, "no answer", {"task": task_id, "error": str(error)[:200]})
                failure = error
            else:
                content = response.content or b""
                record.update(recv_ns=head, http=code)
                if code == 429:
                    metrics.limited(metric)
                    session.pacer(k, "get").spent(time.time())
                    failure = CatchResponseError("rate limited (429)")
                else:
                    metrics.error(metric, f"HTTP {code}", {"task": task_id, "body": content[:300].decode(
                        "utf-8", "replace")})
                    failure = CatchResponseError(f"HTTP {code}")
            self.fire("GET", name, wall, head_ms, len(content), response, failure, url)
            session.emit(record)
            return result
        raw = response._response
        decoder: NdjsonDecoder | SseDecoder = NdjsonDecoder() if fmt == "ndjson" else SseDecoder()
        state = {"seq": 0, "last": 0}

        def handle(event: StreamEvent, now: int) -> None:
            rec: dict[str, Any] = {"task": task_id, "observer": self.observer, "channel": fmt,
                                   "send_ns": send, "recv_ns": now, "wall": wall, "http": 200,
                                   "conn": conn, "seq": state["seq"], "kind": event.kind, "key": label}
            if event.kind == "update" and event.payload is not None:
                current = task_of_update(event.payload)
                for field_name, value in task_digest(current).items():
                    if value is not None:
                        rec[field_name] = value
                status = current.get("status")
                result.statuses.append(status)
                if result.terminal is None and self.is_terminal(status):
                    result.terminal, result.terminal_ns = current, now
            elif event.kind == "invalid":
                metrics.error(metric, "non-JSON stream event",
                              {"task": task_id, "line": event.raw[:200].decode("utf-8", "replace")})
            if state["last"]:
                metrics.hdr.record_ns(f"{fmt}.heartbeat_gap", now - state["last"])
            else:
                metrics.hdr.record_ns(f"{fmt}.ttfe", now - send)
            state["last"] = now
            state["seq"] += 1
            result.events += 1
            session.emit(rec)

        timer = gevent.Timeout(max(0.05, (deadline_ns - monotonic_ns()) / 1e9))
        timer.start()
        graced = False
        try:
            while True:
                line = raw.readline(b"\n")
                now = monotonic_ns()
                if not line:
                    rest = raw.read()
                    result.nbytes += len(rest)
                    for event in [*decoder.feed(rest), *decoder.close()]:
                        handle(event, now)
                    result.closed = True
                    break
                result.nbytes += len(line)
                for event in decoder.feed(line):
                    handle(event, now)
                if result.terminal is not None and not graced:
                    # The server should close right after the terminal update; wait a little.
                    graced = True
                    if (deadline_ns - now) / 1e9 > TERMINAL_GRACE_S:
                        timer.cancel()
                        timer = gevent.Timeout(TERMINAL_GRACE_S)
                        timer.start()
        except gevent.Timeout as fired:
            if fired is not timer:
                raise
            result.timed_out = True
        except Exception as exc:  # a broken connection or chunked framing
            result.error = f"{type(exc).__name__}: {exc}"[:200]
        finally:
            timer.cancel()
            raw.release()
        if result.closed:
            session.emit({"task": task_id, "observer": self.observer, "channel": fmt, "send_ns": send,
                          "recv_ns": monotonic_ns(), "wall": wall, "http": 200, "conn": conn,
                          "seq": state["seq"], "kind": "close", "key": label})
        if result.terminal is not None:
            metrics.hdr.record_ns(f"{fmt}.terminal", result.terminal_ns - send)
        outcome: BaseException | None = None
        if result.error is not None:
            metrics.error(metric, "stream broke off", {"task": task_id, "error": result.error})
            outcome = CatchResponseError("stream broke off")
        elif result.terminal is None and result.closed:
            metrics.count("streams_without_terminal")
            outcome = CatchResponseError("stream closed without a terminal update")
        elif result.terminal is None:
            metrics.count("streams_past_deadline")
            outcome = CatchResponseError("no terminal update within the deadline")
        elif not result.closed:
            metrics.count("streams_not_closed")
            outcome = CatchResponseError("stream not closed after the terminal update")
        metrics.count("streams")
        self.fire("GET", name, wall, head_ms, result.nbytes, response, outcome, url)
        return result


# -- scenario users ------------------------------------------------------------------------

class RunWaitUser(ApiUser):
    """run_wait: POST /apps/run, then read the task's NDJSON stream to the terminal update."""

    weight = 4
    app: ClassVar[dict[str, Any]] = {"app": "infsh/sleep", "input": {"seconds": 1}}

    def scenario(self) -> None:
        started = self.start_task(dict(self.app))
        if started is None:
            return
        task_id, run_send, deadline = started
        result = self.stream(task_id, "ndjson", deadline)
        self.settle(task_id, result, deadline, run_send)


class PollUser(ApiUser):
    """fire_and_forget_poll: run, then /status at an interval (full GET on change) to terminal."""

    weight = 3
    app: ClassVar[dict[str, Any]] = {"app": "infsh/echo", "input": {"message": "load test poll"}}

    def scenario(self) -> None:
        started = self.start_task(dict(self.app))
        if started is None:
            return
        task_id, run_send, deadline = started
        self.poll(task_id, deadline, run_send, status_first=True)


class SseUser(ApiUser):
    """stream_sse: run, then read the task's SSE stream to the terminal event."""

    weight = 2
    app: ClassVar[dict[str, Any]] = {"app": "infsh/sleep", "input": {"seconds": 0.5}}

    def scenario(self) -> None:
        started = self.start_task(dict(self.app))
        if started is None:
            return
        task_id, run_send, deadline = started
        result = self.stream(task_id, "sse", deadline)
        self.settle(task_id, result, deadline, run_send)


class UploadUser(ApiUser):
    """upload: POST /files, PUT the bytes (no auth), run with the file, download and compare."""

    weight = 1
    size = 2048

    def scenario(self) -> None:
        metrics = self.hs.metrics
        data = os.urandom(self.size)
        spec = {"uri": "", "filename": "load.bin", "content_type": "application/octet-stream",
                "path": None, "size": len(data), "public": None}
        created = self.call("files", "create_file", "POST", "/files", name="/files",
                            body={"files": [spec]}, group="upload")
        files = created.data
        record = files[0] if created.ok and isinstance(files, list) and files else None
        if not isinstance(record, dict) or not record.get("upload_url") or not record.get("uri"):
            if created.ok:
                metrics.error("create_file", "no upload_url/uri in the answer",
                              {"body": created.content[:300].decode("utf-8", "replace")})
            return
        put = self.call("upload", "upload", "PUT", str(record["upload_url"]), name="/upload/{token}",
                        payload=data, headers={"Content-Type": "application/octet-stream"})
        if not put.ok:
            return
        started = self.start_task({"app": "infsh/image", "input": {"image": record["uri"]}})
        if started is None:
            return
        task_id, run_send, deadline = started
        result = self.stream(task_id, "ndjson", deadline)
        self.settle(task_id, result, deadline, run_send)
        final = result.terminal
        if final is None or final.get("status") != self.hs.lifecycle.completed:
            return
        output = final.get("output")
        image = output.get("image") if isinstance(output, dict) else None
        uri = image.get("uri") if isinstance(image, dict) else None
        if not isinstance(uri, str):
            metrics.error("run", "completed image task without output.image.uri", {"task": task_id})
            return
        got = self.call("download", "download", "GET", uri, name="/files/{id}/{name}",
                        headers={"User-Agent": USER_AGENT}, task_id=task_id)
        metrics.count("uploads_compared")
        if got.ok and got.content != data:
            metrics.count("upload_mismatch")
            metrics.sample("upload_mismatch", {"task": task_id, "uri": uri, "uploaded": len(data),
                                               "downloaded": len(got.content),
                                               "first_difference": next(
                                                   (i for i, (a, b) in enumerate(zip(data, got.content,
                                                                                     strict=False))
                                                    if a != b), min(len(data), len(got.content)))})


class LimitUser(ApiUser):
    """Sends on the slots of the per-key budgets (every key x group lane), not in a loop."""

    abstract = True
    limit_user = True
    factor: ClassVar[float] = 1.0
    groups: ClassVar[tuple[str, ...]] = ("run", "get", "upload")
    _flip = False

    def scenario(self) -> None:
        session = self.hs
        slot = session.feed(self.factor, self.groups).take()
        if slot is None:
            raise Abort("feed stopped")
        now = time.time()
        if now > slot.deadline:
            session.metrics.count("slots_missed")
            return
        self._intended = monotonic_ns() - int(max(0.0, now - slot.at) * 1e9)
        session.metrics.count("slots_sent")
        self.lane(slot)

    def lane(self, slot: Slot) -> None:
        session = self.hs
        key = slot.key
        if slot.group == "run":
            self.start_task({"app": "infsh/echo", "input": {"message": "load test at the limit"}},
                            key=key)
            return
        if slot.group == "get":
            recent = session.recent_tasks.get(key)
            self._flip = not self._flip
            if not recent:
                self.call("list", "list", "GET", "/tasks?limit=5", name="/tasks", key=key, group="get")
            elif self._flip:
                self.call("get", "get_task", "GET", f"/tasks/{recent[-1]}", name="/tasks/{id}", key=key,
                          group="get", task_id=recent[-1])
            else:
                self.call("status", "status", "GET", f"/tasks/{recent[-1]}/status",
                          name="/tasks/{id}/status", key=key, group="get", task_id=recent[-1])
            return
        if slot.group == "upload":
            spec = {"uri": "", "filename": "limit.bin", "content_type": "application/octet-stream",
                    "path": None, "size": 1, "public": None}
            self.call("files", "create_file", "POST", "/files", name="/files", key=key,
                      body={"files": [spec]}, group="upload")


class AtLimitUser(LimitUser):
    """at_limit: every key sends exactly its documented budget per window; no 429 is expected."""

    factor = 1.0


class OverLimitUser(LimitUser):
    """over_limit: every key sends twice its budget per window; the excess must be a clean 429."""

    factor = 2.0
    expect_429 = True
