"""The route table of the reference server and its handlers: auth, rate limits, envelope, errors."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from harness.server.agent_routes import AgentRoutes
from harness.server.agents import AgentRuntime
from harness.server.apps import parse_ref, renamed_catalog
from harness.server.bodies import read_capped
from harness.server.config import ServerConfig
from harness.server.contract_data import load_server_contract
from harness.server.encoding import dump, envelope
from harness.server.engine import Engine, EngineError, Task
from harness.server.faults import Fault, Faults, StreamFaults
from harness.server.files import FileGone, FileStore, FileTooLarge
from harness.server.problems import ApiError, invalid, problem
from harness.server.ratelimit import Decision, FixedWindowLimiter
from harness.server.schemas import (
    UNSERVED_REASON,
    FilesRequest,
    RunRequest,
    parse_body,
    unserved_fields,
    validated,
)
from harness.server.streaming import TaskStream, wants_sse

ANONYMOUS = "anonymous"
# A media type we send back as given: printable ASCII with a type/subtype (headers are latin-1,
# and a stored content_type is whatever a client posted).
_MEDIA_TYPE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+/[!#$%&'*+.^_`|~0-9A-Za-z-]+(;[ -~]*)?$")


def served_media_type(content_type: str | None) -> str:
    """The Content-Type of a download: the stored one if it is a well-formed media type, else
    application/octet-stream (a non-latin-1 or CR/LF value would crash or split the header)."""
    if content_type and _MEDIA_TYPE.match(content_type):
        return content_type
    return "application/octet-stream"


# Fault `stalls`: reads arriving in the first STALL_S of every STALL_PERIOD_S wait until it ends.
STALL_S, STALL_PERIOD_S = 1.0, 3.0
# Fault `unanswered-reads`: every UNANSWERED_EVERY-th read is held, at most UNANSWERED_HOLD_S.
UNANSWERED_EVERY, UNANSWERED_HOLD_S = 5, 60.0
# Fault `unanswered-streams`: every UNANSWERED_STREAM_EVERY-th stream's head is held the same way.
UNANSWERED_STREAM_EVERY = 2

Handler = Callable[[Request, str], Awaitable[Response]]


class ReferenceApi:
    """State and handlers of one reference server."""

    def __init__(self, config: ServerConfig) -> None:
        contract = load_server_contract()
        self.config = config
        self.contract = contract
        self.faults = Faults(config.faults)
        self.started = time.monotonic()
        self.reads = 0  # task reads so far (fault unanswered-reads)
        self.streams = 0  # task streams so far (fault unanswered-streams)
        self.catalog = renamed_catalog(config.app_names)
        self.keys = set(config.keys)
        self.limiter = FixedWindowLimiter(
            contract.limits, config.rate_window or contract.window_seconds, self.faults)
        self.files = FileStore(config.max_upload_bytes, config.max_files,
                               config.max_stored_bytes, config.retention_seconds,
                               alter_uploads=Fault.UPLOAD_BYTES_ALTERED in self.faults,
                               max_files_per_key=config.max_files_per_key,
                               max_bytes_per_key=config.max_stored_bytes_per_key)
        self.engine = Engine(self.files, contract.status_names, list(config.keys),
                             cloud_workers=config.cloud_workers,
                             private_workers=config.private_workers, speed=config.speed,
                             retention_seconds=config.retention_seconds,
                             max_finished=config.max_finished_tasks, faults=self.faults,
                             dump=dump, max_queued=config.max_queued)
        if Fault.INVALID_KEY_ACCEPTED in self.faults:
            self.engine.add_key(ANONYMOUS, 0)
        self.agents = AgentRuntime(config.agent_speed or config.speed, self.faults, dump,
                                   config.retention_seconds, config.max_finished_tasks)

    # -- plumbing ------------------------------------------------------------------------

    def ok(self, data_json: bytes) -> Response:
        """A 2xx JSON answer: the envelope around `data_json` (bare with the no-envelope fault)."""
        body = data_json if Fault.NO_ENVELOPE in self.faults else envelope(data_json)
        return Response(body, media_type="application/json")

    def problem(self, status: int, code: str, detail: str, extra: dict[str, Any] | None = None,
                headers: dict[str, str] | None = None) -> Response:
        """An error answer: problem+json, unless a fault bends it."""
        if Fault.ERRORS_AS_TEXT in self.faults:
            return PlainTextResponse(f"{status} {detail}", status, headers=headers)
        body_status = 400 if Fault.PROBLEM_STATUS_MISMATCH in self.faults else None
        title = HTTPStatus(status).phrase if Fault.GENERIC_ERROR_TITLES in self.faults else None
        return problem(status, code, detail, extra, headers, body_status, title)

    def authenticate(self, request: Request) -> str | None:
        """The request's API key, or None if it carries no known one."""
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() == "bearer" and token in self.keys:
            return token
        if Fault.INVALID_KEY_ACCEPTED in self.faults:
            return ANONYMOUS
        return None

    def api(self, group: str, handler: Handler,
            json_errors: bool = False) -> Callable[[Request], Awaitable[Response]]:
        """`handler` behind authentication and the rate limit of `group`, errors as problems
        (sent as application/json with `json_errors`: the agent endpoints)."""

        async def endpoint(request: Request) -> Response:
            key = self.authenticate(request)
            if key is None:
                return self.problem(401, "unauthorized", "missing or unknown API key",
                                    headers={"WWW-Authenticate": "Bearer"})
            decision = self.limiter.hit(key, group, time.time())
            if not decision.admitted:
                if group in ("run", "upload") and Fault.RATE_LIMITED_SIDE_EFFECT in self.faults:
                    with contextlib.suppress(ApiError):
                        await handler(request, key)
                return self._rate_limited(decision)
            try:
                response = await handler(request, key)
            except ApiError as exc:
                response = self._error_response(exc)
            except EngineError as exc:
                extra = ({"invalid_params": [{"name": exc.param, "reason": exc.detail}]}
                         if exc.status == 422 and exc.param else None)
                response = self.problem(exc.status, exc.code, exc.detail, extra)
            if response.status_code < 400 or Fault.MISSING_RATE_LIMIT_HEADERS not in self.faults:
                response.headers.update(decision.headers())
            return response

        if not json_errors:
            return endpoint

        async def json_endpoint(request: Request) -> Response:
            response = await endpoint(request)
            if response.media_type == "application/problem+json":
                response.headers["content-type"] = "application/json"
            return response

        return json_endpoint

    def _error_response(self, exc: ApiError) -> Response:
        if exc.status == 422 and Fault.SERVER_ERROR_ON_INVALID_INPUT in self.faults:
            return self.problem(500, "internal_error", "unhandled validation error")
        # A 408 leaves the rest of the body unread: the connection cannot carry another request.
        headers = {"Connection": "close"} if exc.status == 408 else None
        return self.problem(exc.status, exc.code, exc.detail, exc.extra, headers=headers)

    def _rate_limited(self, decision: Decision) -> Response:
        detail = (f"rate limit of {decision.limit} requests per window exceeded; "
                  f"retry after {decision.retry_after} s")
        return self.problem(429, "rate_limited", detail, headers=decision.headers())

    def _owned_task(self, request: Request, key: str) -> Task:
        task_id = request.path_params["id"]
        task = self.engine.get(task_id)
        if task is None and Fault.UNKNOWN_TASK_GONE in self.faults:
            raise ApiError(410, "task_gone", f"task {task_id} is gone")
        if task is None or (task.owner != key and Fault.CROSS_KEY_READ not in self.faults):
            raise ApiError(404, "task_not_found", f"task {task_id} not found")
        return task

    @staticmethod
    def _base_url(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    def _regressed_status(self, task: Task) -> Any | None:
        """status-regression: the task's previous status on every second read, else None."""
        if Fault.STATUS_REGRESSION not in self.faults:
            return None
        task.reads += 1
        if task.reads % 2 == 0 and len(task.events) >= 2:
            return task.events[-2]["status"]
        return None

    # -- handlers ------------------------------------------------------------------------

    async def run(self, request: Request, key: str) -> Response:
        body = parse_body(await read_capped(request, self.config.max_body_bytes,
                                                self.config.body_timeout), RunRequest)
        refused = unserved_fields(body)
        if refused:
            raise invalid([{"name": f"body.{name}", "reason": UNSERVED_REASON} for name in refused])
        ref = parse_ref(body.app)
        if ref is None:
            raise ApiError(422, "validation_failed", f"malformed app reference {body.app!r}",
                           {"invalid_params": [{"name": "body.app", "reason": "expected "
                                                "namespace/name[@version][:function]"}]})
        app = self.catalog.get(ref.name)
        if app is None:
            if Fault.APP_NOT_FOUND_AS_422 in self.faults:
                raise invalid([{"name": "body.app", "reason": f"unknown app {ref.name!r}"}])
            raise ApiError(404, "app_not_found", f"app {ref.name!r} not found")
        parsed_setup = validated(app.validate_setup, body.setup, "setup")
        parsed_input = validated(app.validate_input, body.input, "input")
        base_url = self._base_url(request)
        for name in app.file_fields:
            uri = getattr(parsed_input, name, None)
            if uri is None:
                continue
            record = self.files.by_uri(uri, base_url)
            if record is None or record.owner != key or record.data is None:
                raise invalid([{"name": f"input.{name}",
                                "reason": "not the URI of an uploaded file of this key"}])
        infra = body.infra or "cloud"
        self.engine.check_routing(key, infra, body.workers)
        task = Task(
            id=self.engine.new_id(), owner=key, app=app, app_ref=body.app,
            function=ref.function or body.function, input=body.input, parsed_input=parsed_input,
            setup=body.setup, parsed_setup=parsed_setup, infra=infra,
            workers=body.workers, base_url=base_url, extra={},
        )
        self.engine.submit(task)
        if Fault.RUN_STATUS_QUEUED in self.faults:
            return self.ok(dump({**self.engine.public_task(task), "status": 2}))
        return self.ok(self.engine.task_json(task))

    async def _stall(self) -> None:
        """Fault `stalls`: a read arriving in the first second of every three waits until it ends."""
        phase = (time.monotonic() - self.started) % STALL_PERIOD_S
        if phase < STALL_S:
            await asyncio.sleep(STALL_S - phase)

    async def _hold(self, request: Request) -> None:
        """Fault `unanswered-reads`: every 5th read waits until its client leaves (no answer)."""
        self.reads += 1
        if self.reads % UNANSWERED_EVERY:
            return
        await self._until_gone(request)

    async def _until_gone(self, request: Request) -> None:
        """Hold a request, unanswered, until its client leaves (at most UNANSWERED_HOLD_S)."""
        end = time.monotonic() + UNANSWERED_HOLD_S
        while time.monotonic() < end and not await request.is_disconnected():
            await asyncio.sleep(0.05)

    async def _read_faults(self, request: Request) -> None:
        if Fault.SLOW_READS in self.faults:
            await asyncio.sleep(0.05)
        if Fault.STALLS in self.faults:
            await self._stall()
        if Fault.UNANSWERED_READS in self.faults:
            await self._hold(request)

    async def get_task(self, request: Request, key: str) -> Response:
        await self._read_faults(request)
        task = self._owned_task(request, key)
        if Fault.READ_AFTER_WRITE_DELAY in self.faults and time.time() - task.created < 0.3:
            raise ApiError(404, "task_not_found", f"task {task.id} not found")
        if (older := self._regressed_status(task)) is not None:
            return self.ok(dump({**self.engine.public_task(task), "status": older}))
        return self.ok(self.engine.task_json(task))

    async def get_status(self, request: Request, key: str) -> Response:
        await self._read_faults(request)
        task = self._owned_task(request, key)
        data = self.engine.public_task(task)
        older = self._regressed_status(task)
        status = data["status"] if older is None else older
        return self.ok(dump({"id": task.id, "status": status, "updated_at": data["updated_at"]}))

    async def cancel(self, request: Request, key: str) -> Response:
        task = self._owned_task(request, key)
        if not (Fault.CANCEL_IGNORED in self.faults and not task.terminal):
            self.engine.cancel(task)
        return self.ok(self.engine.task_json(task))

    async def delete(self, request: Request, key: str) -> Response:
        task = self._owned_task(request, key)
        flag = request.query_params.get("files", "false")
        if flag not in ("true", "false"):
            raise invalid([{"name": "query.files", "reason": "must be true or false"}])
        if not (Fault.DELETE_KEEPS_TASK in self.faults and task.terminal):
            self.engine.delete(task, with_files=flag == "true")
        return Response(status_code=204)

    async def list_tasks(self, request: Request, key: str) -> Response:
        try:
            limit = int(request.query_params.get("limit", "100"))
        except ValueError:
            limit = -1
        if not 1 <= limit <= 1000:
            raise invalid([{"name": "query.limit", "reason": "must be an integer from 1 to 1000"}])
        data = [{"id": t.id, "status": t.status, "updated_at": self.engine.public_task(t)["updated_at"]}
                for t in self.engine.owned_tasks(key, limit)]
        return self.ok(dump(data))

    async def workers(self, request: Request, key: str) -> Response:
        return self.ok(dump([w.to_dict(key) for w in self.engine.visible_workers(key)]))

    async def list_files(self, request: Request, key: str) -> Response:
        return self.ok(dump([record.to_dict() for record in self.files.owned(key, 1000)]))

    async def create_files(self, request: Request, key: str) -> Response:
        body = parse_body(await read_capped(request, self.config.max_body_bytes,
                                                self.config.body_timeout), FilesRequest)
        if not body.files:
            raise invalid([{"name": "body.files", "reason": "at least one file is required"}])
        if len(body.files) > self.config.max_files_per_request:
            raise invalid([{"name": "body.files", "reason": "at most "
                            f"{self.config.max_files_per_request} files per request"}])
        for index, spec in enumerate(body.files):
            if spec.filename is None and Fault.NULL_FILENAME_REFUSED in self.faults:
                raise invalid([{"name": f"body.files.{index}.filename", "reason": "must be a string"}])
            if spec.size is not None and spec.size < 0 and Fault.NEGATIVE_SIZE_ACCEPTED not in self.faults:
                raise invalid([{"name": f"body.files.{index}.size", "reason": "must be >= 0"}])
        base_url = self._base_url(request)
        records = [self.files.create(key, base_url, spec.filename, spec.content_type, spec.size,
                                     spec.path) for spec in body.files]
        return self.ok(dump([record.to_dict() for record in records]))

    async def stream(self, request: Request, key: str) -> Response:
        task = self._owned_task(request, key)
        if Fault.UNANSWERED_STREAMS in self.faults:
            self.streams += 1
            if not self.streams % UNANSWERED_STREAM_EVERY:
                await self._until_gone(request)  # no head: the stream never starts
        stream = TaskStream(self.engine, task, wants_sse(request.headers.get("accept", "")),
                            self.config.heartbeat_interval, self.config.progress_interval,
                            StreamFaults(self.faults))
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(stream, headers=headers, media_type=stream.media_type)

    # -- unauthenticated capability URLs -------------------------------------------------

    async def upload(self, request: Request) -> Response:
        record = self.files.by_token(request.path_params["token"])
        if record is None:
            return self.problem(404, "file_not_found", "unknown upload URL")
        if Fault.UPLOAD_URL_REQUIRES_AUTH in self.faults and self.authenticate(request) != record.owner:
            return self.problem(401, "unauthorized", "missing or unknown API key",
                                headers={"WWW-Authenticate": "Bearer"})
        cap = self.files.max_upload_bytes
        try:
            data = await read_capped(request, cap, self.config.body_timeout,
                                     ApiError(413, "payload_too_large", f"upload exceeds {cap} bytes"))
        except ApiError as exc:
            return self._error_response(exc)
        try:
            self.files.put(record, data)
        except FileTooLarge as exc:
            return self.problem(413, "payload_too_large", str(exc))
        except FileGone as exc:
            return self.problem(404, "file_not_found", str(exc))
        return self.ok(dump(record.to_dict()))

    async def download(self, request: Request) -> Response:
        record = self.files.by_id(request.path_params["id"])
        if record is None or record.data is None:
            return self.problem(404, "file_not_found", "no such file, or not uploaded yet")
        return Response(record.data, media_type=served_media_type(record.content_type))

    async def health(self, request: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    # -- the table -----------------------------------------------------------------------

    def routes(self) -> list[Route]:
        group = self.contract.group_of
        return [
            Route("/apps/run", self.api(group["POST /apps/run"], self.run), methods=["POST"]),
            Route("/tasks", self.api(group["GET /tasks"], self.list_tasks), methods=["GET"]),
            Route("/tasks/{id}", self.api(group["GET /tasks/{id}"], self.get_task),
                  methods=["GET"]),
            Route("/tasks/{id}", self.api(group["DELETE /tasks/{id}"], self.delete),
                  methods=["DELETE"]),
            Route("/tasks/{id}/status", self.api(group["GET /tasks/{id}/status"],
                                                 self.get_status), methods=["GET"]),
            Route("/tasks/{id}/stream", self.api(group["GET /tasks/{id}/stream"], self.stream),
                  methods=["GET"]),
            Route("/tasks/{id}/cancel", self.api(group["POST /tasks/{id}/cancel"], self.cancel),
                  methods=["POST"]),
            Route("/files", self.api(group["POST /files"], self.create_files), methods=["POST"]),
            Route("/files", self.api(group["GET /files"], self.list_files), methods=["GET"]),
            Route("/workers", self.api(group["GET /workers"], self.workers), methods=["GET"]),
            Route("/upload/{token}", self.upload, methods=["PUT"]),
            Route("/files/{id}/{name}", self.download, methods=["GET"]),
            Route("/healthz", self.health, methods=["GET"]),
            *AgentRoutes(self, self.agents).routes(group),
        ]


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 (no route, wrong method) as problems."""
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    api: ReferenceApi = request.app.state.api
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        # A 405 names every method of the path (`Allow`, RFC 9110), not only the first route's.
        allowed = sorted({m for route in request.app.routes if isinstance(route, Route)
                          and route.methods and route.path_regex.match(request.url.path)
                          for m in route.methods})
        if Fault.NO_ALLOW_HEADER not in api.faults:
            headers["Allow"] = ", ".join(allowed)
    return api.problem(exc.status_code, code, f"{request.method} {request.url.path}: {detail}",
                       headers=headers)


async def server_error(request: Request, exc: Exception) -> Response:
    """Any unhandled exception as a 500 problem."""
    api: ReferenceApi = request.app.state.api
    return api.problem(500, "internal_error", f"unexpected {type(exc).__name__}")
