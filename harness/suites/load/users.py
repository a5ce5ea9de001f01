"""Locust users for the task API (FastHttpUser): scenarios share one instrumented request path.

Every request (a `routes.Request`) is a Locust request event (Locust's stats and web UI work
as usual) and a `harness.history.Observation` line of the run's history (written by its one
encoder, `to_json`), and its latency goes into an HDR histogram (3 significant digits). Streams
are read line by line as they arrive (`streaming`) and decoded by the sans-I/O parsers of
`harness.net.decoders`; each event is an Observation, and the stream's time to first event,
time to terminal and heartbeat gaps are histograms. Each task's queue time and setup latency
(warm or cold) come from the server timestamps of its events.

API keys: taken round-robin from HARNESS_API_KEYS; they travel only in request headers and
are never logged or written (observations carry a label, `k1`, `k2`, ...).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import urljoin, urlsplit

import gevent  # type: ignore[import-untyped]
from geventhttpclient.url import URL
from locust import FastHttpUser, constant, task
from locust.exception import CatchResponseError, StopUser

from harness.history import Channel, Observation, Outcome, key_label
from harness.net.bounded import ANSWER_DEADLINE_S
from harness.net.hosts import HostPolicy, origin_of
from harness.profile import with_file
from harness.suites.load.answers import AnswerCut, AnswerTimeout, NoAnswer, read_body
from harness.suites.load.chats import ChatTurn
from harness.suites.load.config import follow_up
from harness.suites.load.facts import NO_DIGEST, Digest, limit_facts
from harness.suites.load.open_model import Slot
from harness.suites.load.pacing import BudgetPacer
from harness.suites.load.routes import (
    AGENT_RUN,
    CANCEL,
    CHAT_STREAM,
    CREATE_FILE,
    DOWNLOAD,
    GET_CHAT,
    GET_TASK,
    LIST,
    RUN,
    STATUS,
    STOP_CHAT,
    TOOL_RESULT,
    UPLOAD,
    Request,
    Route,
    contract_route,
    json_payload,
)
from harness.suites.load.session import Abort, LoadSession, session_of
from harness.suites.load.stream_state import StreamFormat, StreamResult
from harness.suites.load.streaming import StreamLog, read_stream

log = logging.getLogger("harness.load")
monotonic_ns = time.monotonic_ns
ACCEPT = {"ndjson": "application/x-ndjson", "sse": "text/event-stream"}
STREAM_NAMES = {"ndjson": "/tasks/{id}/stream [ndjson]", "sse": "/tasks/{id}/stream [sse]"}
TASK_CHANNELS = frozenset(("run", "get", "cancel"))
REDIRECTS = frozenset((301, 302, 303, 307, 308))
MAX_REDIRECTS = 5  # followed on the target's own origin only; the user agent follows none itself
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


@dataclass(slots=True)  # not frozen: one per request, and a frozen init costs ~3x as much
class RoundTrip:
    """A request as sent: what was asked, with which key, where and when (send and answer)."""

    request: Request
    key: int
    url: str
    wall: float
    send_ns: int
    recv_ns: int

    @property
    def elapsed_ms(self) -> float:
        return (self.recv_ns - self.send_ns) / 1e6

    @property
    def key_label(self) -> str | None:
        """The key as the history names it; None when the request carried other headers."""
        return key_label(self.key) if self.request.headers is None else None


@dataclass(frozen=True, slots=True)
class OpenedStream:
    """A stream request up to its response head (response None: no answer, see `error`)."""

    url: str
    wall: float
    send_ns: int
    head_ns: int
    head_ms: float
    response: Any
    error: BaseException | None

    @property
    def code(self) -> int:
        return self.response.status_code if self.response is not None else 0


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
    # TLS verified (Locust's default is not to); redirects are followed by `send` alone, on the
    # target's origin only.
    insecure = False
    max_redirects = 0
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

    def __init__(self, environment: Any) -> None:
        # FastHttpUser builds its client from these in __init__: the run's TLS policy first.
        config = session_of(environment).config
        self.insecure = bool(config.insecure)
        if config.ca_bundle:
            cafile = config.ca_bundle
            self.ssl_context_factory = lambda: gevent.ssl.create_default_context(cafile=cafile)
        super().__init__(environment)

    def on_start(self) -> None:
        # Unusable (a refused plan, no key): `iterate` stops the user. StopUser raised here
        # would be logged by Locust with a traceback.
        session = self.hs = session_of(self.environment)
        self._unusable = bool(session.refused)
        if self._unusable:
            return
        try:
            self.key_index = session.assign_key()
        except Abort as exc:
            log.error("harness: %s", exc)
            self._unusable = True
            return
        self.observer = session.new_observer()
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
        self._target_origin = origin_of(self._base + "/")
        self._hosts = HostPolicy(self._base, frozenset(self.hs.config.file_hosts))
        # One answer never takes longer than a whole task may. One timer, restarted per answer
        # (requests of a user are sequential): a new one per request costs ~3x as much.
        self._answer_s = min(ANSWER_DEADLINE_S, session.config.deadline_s)
        self._timer = gevent.Timeout(self._answer_s, AnswerTimeout(
            f"answer took more than {self._answer_s:g} s (not read further)"))
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
        if self._unusable or session.draining or session.refused:
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

    def pace(self, key: int, group: str | None) -> float:
        """Wait for a slot of the key's budget in `group` (not in the limit scenarios); epoch now."""
        wall = time.time()
        if group is None or self.limit_user:
            return wall
        pacer = self._pacers.get((key, group))
        if pacer is None:
            pacer = self._pacers[(key, group)] = self.hs.pacer(key, group)
        while (until := pacer.try_acquire(wall)) is not None:
            self.hs.sleep_until(until)
            wall = time.time()
        return wall

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

        The whole exchange (redirects included) has one deadline, and the body a size cap: a
        trickle or a flood is an `AnswerCut` error, and its connection is closed.
        """
        timer = self._answer_timer()
        headed = False  # whether the head of the answer being waited for came
        try:
            response = None
            if api_path is not None:
                try:
                    client = self._agent.clientpool.get_client(self._origin)
                    raw = client.request(method, self._prefix + api_path, body=payload, headers=headers)
                except ValueError:  # not a valid request target as it stands: let the agent quote it
                    raw = None
                if raw is not None:
                    response = self._agent.response_type(raw, sent_request=raw._sent_request)
            if response is None:
                response = self._agent.urlopen(url, method=method, headers=headers, payload=payload)
            headed = True
            for _ in range(MAX_REDIRECTS):
                location = response.headers.get("location") if response.status_code in REDIRECTS else None
                if not isinstance(location, str) or not location:
                    break
                target = urljoin(url, location)
                if origin_of(target) != self._target_origin:
                    # Off the target's origin: an answer to judge, never a request (nor a key) sent
                    # to a host nobody allowed.
                    break
                response.release()
                headed = False  # the next answer's head has not come yet
                url = target
                if response.status_code == 303 or (response.status_code in (301, 302) and method == "POST"):
                    method, payload = "GET", None  # as requests and the user agent do
                    headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
                response = self._agent.urlopen(url, method=method, headers=headers, payload=payload)
                headed = True
            return response, read_body(response), None
        except Exception as exc:  # connection refused/reset, timeout, malformed HTTP, a cut
            if not headed and isinstance(exc, TimeoutError | gevent.Timeout):
                # Not even the head came: the answer never came (indeterminate), not a wrong one.
                return None, b"", NoAnswer(f"no answer within {self._answer_s:g} s")
            return None, b"", exc
        finally:
            timer.cancel()

    def _answer_timer(self) -> Any:
        """The user's timer, started: AnswerTimeout in this greenlet at the answer deadline."""
        timer = self._timer
        timer.start()
        return timer

    def fire(self, method: str, name: str, started: float, elapsed_ms: float, length: int,
             response: Any, exception: BaseException | None, url: str) -> None:
        self._request_event.fire(request_type=method, name=name, response_time=elapsed_ms,
                                 response_length=length, response=response, context={},
                                 exception=exception, start_time=started, url=url)

    def not_created(self, answer: Answer, name: str, what: str) -> None:
        """A billable create that made nothing: its budget slot back when the target answered (no
        answer at all may still have created it), and an error when it answered 2xx without an id."""
        if answer.code != 0:
            self.hs.budget.refund()
        if answer.ok:
            self.hs.metrics.error(name, what, {"body": answer.content[:300].decode("utf-8", "replace")})

    def call(self, request: Request) -> Answer:
        """One request: pacing, a Locust request event, HDR latency, counters, an Observation."""
        route = request.route
        key = self.key_index if request.key is None else request.key
        wall = self.pace(key, route.group)
        intended, self._intended = self._intended, 0
        path = request.path
        absolute = path.startswith(("http://", "https://"))
        url = path if absolute else self._base + path
        headers = request.headers
        if headers is None:
            headers = self._headers[key] if request.payload is None else self._json_headers[key]
        send = monotonic_ns()
        response, content, error = self.send(route.method, url, headers, request.payload,
                                             None if absolute else path)
        recv = monotonic_ns()
        metrics = self.hs.metrics
        metrics.request(route.metric)
        metrics.hdr.record_ns(route.metric, recv - (intended or send))
        trip = RoundTrip(request, key, url, wall, send, recv)
        if response is None:
            return self._unanswered(trip, error)
        return self._answered(trip, response, content)

    def _unanswered(self, trip: RoundTrip, error: BaseException | None) -> Answer:
        """No answer (refused, reset, timed out): an error and an indeterminate Observation."""
        request, route = trip.request, trip.request.route
        reason = error.reason if isinstance(error, AnswerCut) else f"no answer ({type(error).__name__})"
        sample = {"request": f"{route.method} {route.name}", "error": str(error)[:300],
                  "task": request.task_id}
        if isinstance(error, NoAnswer):
            # The one rule (harness/net/bounded.unanswered): counted as indeterminate, not an error.
            self.hs.metrics.count("indeterminate")
            self.hs.metrics.sample(f"indeterminate: {route.metric}", sample)
        else:
            self.hs.metrics.error(route.metric, reason, sample)
        self.fire(route.method, route.name, trip.wall, trip.elapsed_ms, 0, None, error, trip.url)
        outcome: Outcome = "timeout" if isinstance(error, TimeoutError | gevent.Timeout) else "error"
        self.hs.record(Observation(request.task_id, self.observer, route.channel, trip.send_ns, None,
                                   trip.wall, outcome=outcome, key=trip.key_label,
                                   extra={**(request.extra or {}), "error": type(error).__name__}))
        return Answer(0)

    def _answered(self, trip: RoundTrip, response: Any, content: bytes) -> Answer:
        """An answer: its data and task fields, rate-limit facts, verdict, and its Observation."""
        request, route = trip.request, trip.request.route
        code = response.status_code
        headers = response.headers
        data, digest = self._body(route, code, content)
        task_id = request.task_id
        if task_id is None and 200 <= code < 300 and route.channel in TASK_CHANNELS \
                and isinstance(data, dict) and isinstance(data.get("id"), str):
            task_id = data["id"]  # a run's task
        facts = {} if route.group is None else limit_facts(
            headers.get, route.group, code, content, self.limit_user or code == 429)
        failure = self._judge(trip, code, content, facts.get("rl_remaining"))
        self.fire(route.method, route.name, trip.wall, trip.elapsed_ms, len(content), response, failure,
                  trip.url)
        extra = {**request.extra, **facts} if request.extra else facts
        self.hs.record(Observation(task_id, self.observer, route.channel, trip.send_ns, trip.recv_ns,
                                   trip.wall, code, digest.status, digest.output, digest.error,
                                   digest.updated_at, trail=digest.trail, key=trip.key_label,
                                   extra=extra))
        return Answer(code, data, headers, content, trip.recv_ns)

    def _body(self, route: Route, code: int, content: bytes) -> tuple[Any, Digest]:
        """The `data` of an answer, and the task fields of a 2xx task or status body."""
        if 200 <= code < 300 and route.channel in TASK_CHANNELS:
            return self.hs.digest("task", content, route.channel == "get")
        if 200 <= code < 300 and route.channel == "status":
            return self.hs.digest("status", content, True)
        return (self.hs.parse(content) if content else None), NO_DIGEST

    def _judge(self, trip: RoundTrip, code: int, content: bytes, remaining: int | None
               ) -> BaseException | None:
        """Counters and the key's budget from an answer's status; what failed the request, or None."""
        route = trip.request.route
        metrics = self.hs.metrics
        paced = route.group is not None and not self.limit_user
        if 200 <= code < 300 or code in route.expected:
            if remaining == 0 and paced:
                self.hs.pacer(trip.key, str(route.group)).spent(time.time())
            return None
        if code == 429:
            metrics.limited(route.metric)
            if paced:
                self.hs.pacer(trip.key, str(route.group)).spent(time.time())
            return None if self.expect_429 else CatchResponseError("rate limited (429)")
        reason = f"HTTP {code}"
        metrics.error(route.metric, reason, {"request": f"{route.method} {route.name}", "status": code,
                                             "body": content[:300].decode("utf-8", "replace"),
                                             "task": trip.request.task_id})
        return CatchResponseError(reason)

    # -- task steps ----------------------------------------------------------------------

    def start_app(self, scenario: str, key: int | None = None,
                  file_uri: str | None = None) -> tuple[str, int, int] | None:
        """Start the scenario's app from the profile ("$FILE" in its input becomes `file_uri`)."""
        body = self.hs.config.apps.get(scenario)
        if body is None:
            self.hs.metrics.count("no_app_mapped")
            raise StopUser()  # the profile maps no app for this scenario: nothing to run
        return self.start_task(with_file(body, file_uri), key)

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
        answer = self.call(Request(RUN, "/apps/run", json_payload(body), key,
                                   extra={"deadline_s": deadline_s, "app": body.get("app")}))
        task_id = answer.data.get("id") if answer.ok and isinstance(answer.data, dict) else None
        if not isinstance(task_id, str):
            self.not_created(answer, "run", "answer without a task id")
            return None
        session.metrics.count("tasks_created")
        session.remember_task(self.key_index if key is None else key, task_id)
        return task_id, send, send + int(deadline_s * 1e9)

    def get_task(self, task_id: str) -> Answer:
        return self.call(Request(GET_TASK, f"/tasks/{task_id}", task_id=task_id))

    def get_status(self, task_id: str) -> Answer:
        return self.call(Request(STATUS, f"/tasks/{task_id}/status", task_id=task_id))

    def is_terminal(self, status: Any) -> bool:
        return self.hs.is_terminal(status)

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
        self.call(Request(CANCEL, f"/tasks/{task_id}/cancel", b"", task_id=task_id,
                          extra={"cleanup": True}))

    def settle(self, task_id: str, result: StreamResult, deadline_ns: int, run_send: int) -> None:
        """After a stream: a GET must agree with its terminal state; without one, poll."""
        if result.terminal is not None:
            self.get_task(task_id)
            self.finish_task(result.terminal, result.terminal_ns, run_send)
            return
        self.poll(task_id, deadline_ns, run_send, status_first=False)

    # -- streams ---------------------------------------------------------------------------

    def stream(self, task_id: str, fmt: StreamFormat, deadline_ns: int) -> StreamResult:
        """Read a task stream line by line to its end (or the deadline), recording every event.

        One Locust request event per stream, fired when it ends: response time = time to the
        response headers (as Locust's stream=True does), length = the bytes read.
        """
        key = self.key_index
        self.pace(key, "get")
        self._conns += 1
        conn = f"{self.observer}/{fmt}{self._conns}"
        url = f"{self._base}/tasks/{task_id}/stream"
        opened = self._open_stream(url, self._stream_headers[fmt][key], f"stream_{fmt}")
        if opened.code != 200:
            self._stream_refused(opened, key, f"stream_{fmt}", STREAM_NAMES[fmt], fmt, task_id)
            return StreamResult()
        log = StreamLog(self.hs, task_id, fmt, self.observer, key_label(key), conn, opened.send_ns,
                        opened.wall)
        read_stream(opened.response._response, log, deadline_ns)
        failure = log.finish()
        self.fire("GET", STREAM_NAMES[fmt], opened.wall, opened.head_ms, log.result.nbytes,
                  opened.response, None if failure is None else CatchResponseError(failure), opened.url)
        return log.result

    def _open_stream(self, url: str, headers: dict[str, str], metric: str) -> OpenedStream:
        """Send the stream request and wait for the response head (its latency is the metric's)."""
        wall = time.time()
        send = monotonic_ns()
        perf = time.perf_counter()
        timer = self._answer_timer()  # the head only: the stream's own deadlines take over after it
        try:
            response: Any = self._agent.urlopen(url, method="GET", headers=headers)
            error: BaseException | None = None
        except Exception as exc:
            response, error = None, exc
        finally:
            timer.cancel()
        head = monotonic_ns()
        head_ms = (time.perf_counter() - perf) * 1000.0
        metrics = self.hs.metrics
        metrics.request(metric)
        metrics.hdr.record_ns(metric, head - send)
        return OpenedStream(url, wall, send, head, head_ms, response, error)

    def _stream_refused(self, opened: OpenedStream, key: int, metric: str, name: str, channel: Channel,
                        task_id: str | None, extra: dict[str, Any] | None = None) -> None:
        """A stream that did not open (no answer, a 429, an error status): counters, event, Observation."""
        session = self.hs
        response, content = opened.response, b""
        subject = {"task": task_id} if extra is None else dict(extra)
        failure: BaseException | None
        if response is None:
            reason = opened.error.reason if isinstance(opened.error, AnswerCut) else "no answer"
            session.metrics.error(metric, reason, {**subject, "error": str(opened.error)[:200]})
            failure = opened.error
        else:
            timer = self._answer_timer()
            try:
                content = read_body(response)
            except Exception as exc:  # the refusal's body is evidence only: its cut is one more error
                reason = exc.reason if isinstance(exc, AnswerCut) else f"no answer ({type(exc).__name__})"
                session.metrics.error(metric, reason, {**subject, "error": str(exc)[:200]})
            finally:
                timer.cancel()
            if opened.code == 429:
                session.metrics.limited(metric)
                session.pacer(key, "get").spent(time.time())
                failure = CatchResponseError("rate limited (429)")
            else:
                session.metrics.error(metric, f"HTTP {opened.code}", {
                    **subject, "body": content[:300].decode("utf-8", "replace")})
                failure = CatchResponseError(f"HTTP {opened.code}")
        self.fire("GET", name, opened.wall, opened.head_ms, len(content), response, failure, opened.url)
        answered = response is not None
        session.record(Observation(task_id, self.observer, channel, opened.send_ns,
                                   opened.head_ns if answered else None, opened.wall,
                                   opened.code if answered else None,
                                   outcome="ok" if answered else "error", key=key_label(key),
                                   extra=extra or {}))


# -- scenario users ------------------------------------------------------------------------

class RunWaitUser(ApiUser):
    """run_wait: POST /apps/run, then read the task's NDJSON stream to the terminal update."""

    weight = 4

    def scenario(self) -> None:
        started = self.start_app("run_wait")
        if started is None:
            return
        task_id, run_send, deadline = started
        result = self.stream(task_id, "ndjson", deadline)
        self.settle(task_id, result, deadline, run_send)


class PollUser(ApiUser):
    """fire_and_forget_poll: run, then /status at an interval (full GET on change) to terminal."""

    weight = 3

    def scenario(self) -> None:
        started = self.start_app("poll")
        if started is None:
            return
        task_id, run_send, deadline = started
        self.poll(task_id, deadline, run_send, status_first=True)


class ContractMixUser(ApiUser):
    """contract_mix: the contract's generated requests (harness/suites/load/contract_cases.py)
    replayed in turn; one answer in SAMPLE_EVERY judged against the contract."""

    SAMPLE_EVERY = 4
    NEW_TASK_EVERY = 20  # iterations between two tasks of the user's own, for the task paths

    def on_start(self) -> None:
        super().on_start()
        self._case = self.hs.next_case_offset()
        self._task: str | None = None
        self._answers = 0

    def scenario(self) -> None:
        session = self.hs
        cases = session.config.contract_cases
        if not cases or session.documented is None:
            session.metrics.count("no_contract_cases")
            raise StopUser()
        if self._task is None or self._case % self.NEW_TASK_EVERY == 0:
            started = self.start_app("poll")
            if started is not None:
                self._task = started[0]
        case = cases[self._case % len(cases)]
        self._case += 1
        operation = str(case["operation"])
        method, _, template = operation.partition(" ")
        own = "{id}" in template and self._task is not None
        path = template.replace("{id}", str(self._task)) if own else str(case["path"])
        query = "&".join(f"{k}={v}" for k, v in (case.get("query") or {}).items()
                         if isinstance(v, str | int | float) and not isinstance(v, bool))
        route = contract_route(operation, session.documented.statuses(operation))
        body = case.get("body")
        payload = json_payload(body) if body is not None else (b"" if method == "POST" else None)
        if operation == "POST /apps/run" and not session.budget.take():
            session.metrics.count("budget_exhausted")
            raise StopUser()
        answer = self.call(Request(route, f"{path}?{query}" if query else path, payload,
                                   task_id=self._task if "{id}" in template else None))
        if operation == "POST /apps/run":
            if 200 <= answer.code < 300 and isinstance(answer.data, dict):
                session.metrics.count("tasks_created")
            elif answer.code != 0:
                session.budget.refund()
        self._answers += 1
        if answer.code and self._answers % self.SAMPLE_EVERY == 0:
            session.judge_contract(operation, answer)


class SseUser(ApiUser):
    """stream_sse: run, then read the task's SSE stream to the terminal event."""

    weight = 2

    def scenario(self) -> None:
        started = self.start_app("sse")
        if started is None:
            return
        task_id, run_send, deadline = started
        result = self.stream(task_id, "sse", deadline)
        self.settle(task_id, result, deadline, run_send)


class AgentChatUser(ApiUser):
    """agent_chat: a two-turn conversation with the profile's agent (harness/suites/load/chats.py).

    Turn one offers the client `calculator` and asks for 42 * 17: the chat stream is read as it
    arrives, a calculator call waiting for its result gets it (`POST /tools/{id}`), and the
    answer after it must hold 714. Turn two is another message in the same chat (`chat_id`),
    whose answer must come. Each turn: stream to the run's end, then `GET /chats/{id}` judged.
    """

    weight = 1
    TURNS = 2

    def scenario(self) -> None:
        session = self.hs
        body = session.config.apps.get("agent_chat")
        if body is None:
            session.metrics.count("no_app_mapped")
            raise StopUser()  # the profile maps no agent
        chat_id: str | None = None
        for index in range(self.TURNS):
            turn = self.turn(body if chat_id is None else follow_up(body, chat_id))
            if turn is None:
                return  # the conversation cannot go on (its error is counted)
            if index == 0 and not turn.asked:
                # A real model may answer without the tool: the API promised nothing else.
                session.metrics.count("tool_not_called")
            chat_id = turn.chat_id
        session.metrics.count("conversations")

    def turn(self, body: dict[str, Any]) -> ChatTurn | None:
        """One message: sent, its chat stream read to the run's end, the chat judged. None when
        the conversation cannot go on."""
        session = self.hs
        if not session.budget.take():
            session.metrics.count("budget_exhausted")
            raise StopUser()
        sent = self._intended or monotonic_ns()  # the open model counts from the intended start
        deadline = sent + int(session.config.deadline_s * 1e9)
        answer = self.call(Request(AGENT_RUN, "/agents/run", json_payload(body)))
        data = answer.data if isinstance(answer.data, dict) else {}
        assistant = data.get("assistant_message")
        assistant = assistant if isinstance(assistant, dict) else {}
        chat_id, run_id = assistant.get("chat_id"), assistant.get("agent_run_id")
        if not isinstance(chat_id, str):
            self.not_created(answer, "agent_run", "answer without an assistant message's chat_id")
            return None
        session.metrics.count("tasks_created")
        turn = ChatTurn(session.metrics, chat_id, run_id if isinstance(run_id, str) else None, sent,
                        lambda invocation, result: self.post_tool(chat_id, invocation, result))
        if not self.chat_stream(turn, deadline) or not turn.ended_ns:
            # A run not seen to end may still be going (or waiting on a tool result nobody will
            # post), and it costs money: stop it, as a task past its deadline is cancelled.
            self.call(Request(STOP_CHAT, f"/chats/{chat_id}/stop", b"", extra={"chat": chat_id,
                                                                               "cleanup": True}))
            return None
        chat = self.call(Request(GET_CHAT, f"/chats/{chat_id}", extra={"chat": chat_id}))
        if not (chat.ok and isinstance(chat.data, dict)):
            return None
        turn.judge(chat.data)
        session.metrics.count("agent_turns")
        return turn

    def chat_stream(self, turn: ChatTurn, deadline_ns: int) -> bool:
        """Read the turn's chat stream as it arrives, to the server's close after the run ended
        (or the deadline); one Locust event and one Observation. False: it did not open."""
        key, chat_id = self.key_index, turn.chat_id
        self.pace(key, "get")
        url = f"{self._base}/chats/{chat_id}/stream"
        opened = self._open_stream(url, self._stream_headers["ndjson"][key], CHAT_STREAM.metric)
        if opened.code != 200:
            self._stream_refused(opened, key, CHAT_STREAM.metric, CHAT_STREAM.name, "chat", None,
                                 {"chat": chat_id})
            return False
        read_stream(opened.response._response, turn, deadline_ns)
        failure = turn.stream_failure()
        result = turn.result
        self.fire("GET", CHAT_STREAM.name, opened.wall, opened.head_ms, result.nbytes, opened.response,
                  None if failure is None else CatchResponseError(failure), opened.url)
        self.hs.record(Observation(None, self.observer, "chat", opened.send_ns, opened.head_ns,
                                   opened.wall, 200, key=key_label(key),
                                   extra={"chat": chat_id, "events": result.events, "bytes": result.nbytes,
                                          "deltas": sum(len(d.seqs) for d in turn.deltas.values()),
                                          "run_state": turn.run_state, "closed": result.closed}))
        return True

    def post_tool(self, chat_id: str, invocation: str, result: str) -> bool:
        """POST /tools/{id} with a client tool's result; whether it was answered 2xx."""
        answer = self.call(Request(TOOL_RESULT, f"/tools/{invocation}", json_payload({"result": result}),
                                   extra={"chat": chat_id, "invocation": invocation}))
        return answer.ok


class UploadUser(ApiUser):
    """upload: POST /files, PUT the bytes (no auth), run with the file, download and compare."""

    weight = 1
    size = 2048

    def scenario(self) -> None:
        metrics = self.hs.metrics
        data = os.urandom(self.size)
        spec = {"uri": "", "filename": "load.bin", "content_type": "application/octet-stream",
                "path": None, "size": len(data), "public": None}
        created = self.call(Request(CREATE_FILE, "/files", json_payload({"files": [spec]})))
        files = created.data
        record = files[0] if created.ok and isinstance(files, list) and files else None
        if not isinstance(record, dict) or not record.get("upload_url") or not record.get("uri"):
            if created.ok:
                metrics.error("create_file", "no upload_url/uri in the answer",
                              {"body": created.content[:300].decode("utf-8", "replace")})
            return
        refused = self._hosts.refusal(str(record["upload_url"]))
        if refused is not None:
            metrics.error("upload", f"upload URL {refused}", {"upload_url": str(record["upload_url"])[:200]})
            return
        put = self.call(Request(UPLOAD, str(record["upload_url"]), data,
                                headers={"Content-Type": "application/octet-stream"}))
        if not put.ok:
            return
        started = self.start_app("upload", file_uri=str(record["uri"]))
        if started is None or not self.hs.config.apps_builtin:
            # Another app's output is its own: only the reference image app hands the bytes back.
            if started is not None:
                task_id, run_send, deadline = started
                self.settle(task_id, self.stream(task_id, "ndjson", deadline), deadline, run_send)
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
        refused = self._hosts.refusal(uri)
        if refused is not None:
            metrics.error("download", f"output URI {refused}", {"task": task_id})
            return
        got = self.call(Request(DOWNLOAD, uri, task_id=task_id, headers={"User-Agent": USER_AGENT}))
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
            self.start_app("limit", key=key)
            return
        if slot.group == "get":
            recent = session.recent_tasks.get(key)
            self._flip = not self._flip
            if not recent:
                self.call(Request(LIST, "/tasks?limit=5", key=key))
            elif self._flip:
                self.call(Request(GET_TASK, f"/tasks/{recent[-1]}", key=key, task_id=recent[-1]))
            else:
                self.call(Request(STATUS, f"/tasks/{recent[-1]}/status", key=key, task_id=recent[-1]))
            return
        if slot.group == "upload":
            spec = {"uri": "", "filename": "limit.bin", "content_type": "application/octet-stream",
                    "path": None, "size": 1, "public": None}
            self.call(Request(CREATE_FILE, "/files", json_payload({"files": [spec]}), key))


class AtLimitUser(LimitUser):
    """at_limit: every key sends exactly its documented budget per window; no 429 is expected."""

    factor = 1.0


class OverLimitUser(LimitUser):
    """over_limit: every key sends twice its budget per window; the excess must be a clean 429."""

    factor = 2.0
    expect_429 = True
