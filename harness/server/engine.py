"""Task scheduler: simulated workers, phases with scaled durations, setup warmth, cancel."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Literal

from harness.server.apps import App, AppFailure, OutputFile
from harness.server.faults import Fault, Faults
from harness.server.files import FileStore
from harness.server.fingerprint import setup_fingerprint
from harness.server.inbox import Inbox
from harness.server.interruptible import sleep_unless
from harness.server.timefmt import rfc3339

RECEIVED, QUEUED, DISPATCHED, PREPARING, SERVING, SETTING_UP, RUNNING = 1, 2, 3, 4, 5, 6, 7
CANCELLING, UPLOADING, COMPLETED, FAILED, CANCELLED, REJECTED = 8, 9, 10, 11, 12, 13
TERMINAL = frozenset({COMPLETED, FAILED, CANCELLED, REJECTED})
LOG_RUN, LOG_SERVE, LOG_SETUP, LOG_TASK = 1, 2, 3, 4
Infra = Literal["cloud", "private", "private_first"]

# Phase durations in seconds at --speed 1.
RECEIVE_S = 0.05
DISPATCH_S = 0.1
PREPARE_S = 0.6
SERVE_S = 0.6
SETUP_S = 0.4
UPLOAD_S = 0.3
CANCEL_S = 0.1

# Fields every update carries in `fields` when it changes the status.
STATUS_FIELDS = ("status", "status_text", "events", "logs", "updated_at")


class _Cancelled(Exception):
    """Raised inside a task's driver when a cancel was requested."""


@dataclass
class Worker:
    """A simulated worker; remembers the app and setup it last served (its warmth)."""

    id: str
    pool: Literal["cloud", "private"]
    owner: str | None = None
    task_id: str | None = None
    warm_app: str | None = None
    warm_setup: str | None = None
    warm_owner: str = ""  # the key of the last run here (its setup's fingerprint is keyed by it)

    def to_dict(self, viewer: str) -> dict[str, Any]:
        """The worker as `viewer` (a key) sees it."""
        return {
            "id": self.id,
            "pool": self.pool,
            "busy": self.task_id is not None,
            # Workers are shared between keys: show the setup only as a fingerprint, since
            # setups carry secrets (tokens) that other keys must not read.
            "warm": {
                "app": self.warm_app,
                "setup": ({"fingerprint": setup_fingerprint(self.warm_setup, self.warm_owner, viewer)}
                          if self.warm_setup else None),
            },
        }


@dataclass
class Task:
    """A task and everything observers may see of it."""

    id: str
    owner: str
    app: App
    app_ref: str
    function: str | None
    input: Any
    parsed_input: Any
    setup: Any
    parsed_setup: Any
    infra: Infra
    workers: list[str] | None
    base_url: str
    extra: dict[str, Any]
    status: int = RECEIVED
    output: dict[str, Any] | None = None
    error: str | None = None
    worker_id: str | None = None
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    finished: float | None = None
    logs: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    version: int = 0
    cancel_event: asyncio.Event = field(default_factory=asyncio.Event)
    assigned: asyncio.Future[Worker] | None = None
    subscribers: list[Inbox] = field(default_factory=list)
    reads: int = 0
    ordinal: int = 0
    _cache: dict[str, Any] | None = None
    _json: bytes | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def touch(self) -> None:
        """Mark a change: a new version, and the cached encodings are stale."""
        self.version += 1
        self._cache = None
        self._json = None

    @property
    def setup_key(self) -> str:
        dumped = self.parsed_setup.model_dump() if hasattr(self.parsed_setup, "model_dump") else {}
        return json.dumps(dumped, sort_keys=True)

    def to_dict(self, status_names: dict[int, str]) -> dict[str, Any]:
        """The full TaskDTO (cached per version: readers must not mutate it)."""
        if self._cache is not None:
            return self._cache
        self._cache = {
            "id": self.id,
            "short_id": self.id[5:13],
            "status": self.status,
            "status_text": status_names.get(self.status, "unknown"),
            "app": self.app_ref,
            "function": self.function,
            "input": self.input,
            "setup": self.setup,
            "infra": self.infra,
            "workers": self.workers,
            "worker_id": self.worker_id,
            "session_id": None,
            "output": self.output,
            "error": self.error,
            "logs": list(self.logs),
            "events": list(self.events),
            "created_at": rfc3339(self.created),
            "updated_at": rfc3339(self.updated),
            **self.extra,
        }
        return self._cache


class EngineError(Exception):
    """A request the engine refuses; `code` is the problem code."""

    def __init__(self, status: int, code: str, detail: str, param: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.param = param  # the offending request field of a 422 (`invalid_params[].name`)


class Engine:
    """Owns tasks and workers; drives every task from Received to a terminal status."""

    def __init__(
        self,
        files: FileStore,
        status_names: dict[int, str],
        keys: list[str],
        cloud_workers: int = 16,
        private_workers: int = 2,
        speed: float = 1.0,
        retention_seconds: float = 3600.0,
        max_finished: int = 10_000,
        faults: Faults | None = None,
        dump: Callable[[Any], bytes] | None = None,
        max_queued: int | None = None,
    ) -> None:
        self.files = files
        self.max_queued = max_queued
        self.status_names = status_names
        self.speed = speed
        self.retention_seconds = retention_seconds
        self.max_finished = max_finished
        self.faults = faults or Faults()
        self._dump = dump or (lambda v: json.dumps(v, separators=(",", ":")).encode())
        self.tasks: dict[str, Task] = {}
        self._finished: OrderedDict[str, float] = OrderedDict()
        self._pending: deque[Task] = deque()
        self._drivers: set[asyncio.Task[None]] = set()
        self.workers: list[Worker] = [Worker(f"cw-{i:03d}", "cloud") for i in range(cloud_workers)]
        self.key_index: dict[str, int] = {}
        self._runs = 0
        self._submitted = 0
        self._last_id = ""
        for key in keys:
            self.add_key(key, private_workers)

    # -- workers -------------------------------------------------------------------------

    def add_key(self, key: str, private_workers: int) -> None:
        if key in self.key_index:
            return
        index = len(self.key_index) + 1
        self.key_index[key] = index
        for i in range(private_workers):
            self.workers.append(Worker(f"pw-{index:02d}-{i:02d}", "private", owner=key))

    def visible_workers(self, owner: str) -> list[Worker]:
        return [w for w in self.workers if w.pool == "cloud" or w.owner == owner]

    def _candidates(self, owner: str, infra: Infra, ids: list[str] | None) -> list[Worker]:
        private = [w for w in self.workers if w.owner == owner]
        cloud = [w for w in self.workers if w.pool == "cloud"]
        pool = {"cloud": cloud, "private": private, "private_first": private + cloud}[infra]
        if ids is not None:
            wanted = set(ids)
            pool = [w for w in pool if w.id in wanted]
        return pool

    def check_routing(self, owner: str, infra: Infra, ids: list[str] | None) -> None:
        """Refuse routing that can never be served (raises EngineError 422)."""
        if infra == "private" and not any(w.owner == owner for w in self.workers):
            raise EngineError(422, "validation_failed", "infra 'private' needs private workers, "
                              "and this key has none", "body.infra")
        if ids is not None:
            if not ids:
                raise EngineError(422, "validation_failed", "workers must not be empty", "body.workers")
            pool = {w.id for w in self._candidates(owner, infra, None)}
            unknown = [i for i in ids if i not in pool]
            if unknown:
                raise EngineError(422, "validation_failed",
                                  f"unknown worker {unknown[0]!r} for infra {infra!r}; "
                                  "GET /workers lists the workers this key can use", "body.workers")

    # -- tasks ---------------------------------------------------------------------------

    def waiting(self) -> int:
        """Tasks waiting for a worker: Received or Queued (O(open tasks); only with max_queued)."""
        return sum(1 for t in self.tasks.values() if t.status in (RECEIVED, QUEUED))

    def submit(self, task: Task) -> Task:
        self._submitted += 1
        task.ordinal = self._submitted
        if self.max_queued is not None and (waiting := self.waiting()) >= self.max_queued:
            self.tasks[task.id] = task
            return self._reject(task, f"rejected: the queue is full ({waiting} tasks waiting for "
                                      f"a worker, at most {self.max_queued})")
        self.tasks[task.id] = task
        # A raw U+2028 in a log line, as a JavaScript or Python backend may pass through.
        received = ("task received\u2028waiting for a worker" if Fault.RAW_LINE_SEPARATORS in self.faults
                    else "task received")
        self._record(task, RECEIVED, received, LOG_TASK, change=False)
        driver = asyncio.get_running_loop().create_task(self._drive(task))
        self._drivers.add(driver)
        driver.add_done_callback(self._drivers.discard)
        return task

    def _reject(self, task: Task, reason: str) -> Task:
        """Refused at admission: the task is created already ended, Rejected, with its reason."""
        task.error = None if Fault.FAILED_WITHOUT_ERROR in self.faults else reason
        self._record(task, REJECTED, reason, LOG_TASK, change=False)
        return task

    def new_id(self) -> str:
        self._runs += 1
        if Fault.DUPLICATE_ID in self.faults and self._runs % 7 == 0 and self._last_id:
            return self._last_id
        self._last_id = "task_" + secrets.token_hex(12)
        return self._last_id

    def get(self, task_id: str) -> Task | None:
        return self.tasks.get(task_id)

    def owned_tasks(self, owner: str, limit: int) -> list[Task]:
        """The owner's most recent tasks, newest first (retention bounds the scan)."""
        return list(islice((t for t in reversed(self.tasks.values()) if t.owner == owner), limit))

    def cancel(self, task: Task) -> None:
        if task.terminal:
            raise EngineError(409, "invalid_transition",
                              f"task {task.id} already ended as "
                              f"{self.status_names.get(task.status, task.status)}")
        if task.status != CANCELLING:
            self._record(task, CANCELLING, "cancel requested", LOG_TASK)
        task.cancel_event.set()

    def delete(self, task: Task, with_files: bool) -> None:
        if not task.terminal:
            raise EngineError(409, "invalid_transition",
                              f"task {task.id} has not ended; cancel it first")
        self.tasks.pop(task.id, None)
        self._finished.pop(task.id, None)
        if with_files:
            for file_id in _file_ids(task.output):
                self.files.delete(file_id)

    # -- observation ---------------------------------------------------------------------

    def subscribe(self, task: Task) -> Inbox:
        inbox = Inbox()
        task.subscribers.append(inbox)
        return inbox

    def unsubscribe(self, task: Task, inbox: Inbox) -> None:
        if inbox in task.subscribers:
            task.subscribers.remove(inbox)

    def update_line(self, task: Task, fields: list[str]) -> bytes:
        """The JSON of one stream update: the full task plus the names of changed fields."""
        return b'{"data":' + self.task_json(task) + b',"fields":' + self._dump(fields) + b"}"

    def task_json(self, task: Task) -> bytes:
        """The task's JSON, encoded once per version."""
        if task._json is None:
            task._json = self._dump(self.public_task(task))
        return task._json

    def public_task(self, task: Task) -> dict[str, Any]:
        data = task.to_dict(self.status_names)
        if Fault.FLOAT_STATUS in self.faults:
            data = {**data, "status": float(data["status"])}
        if Fault.STRING_STATUS in self.faults:
            data = {**data, "status": str(data["status"])}
        return data

    # -- driving -------------------------------------------------------------------------

    def _record(self, task: Task, status: int, message: str, log_type: int,
                change: bool = True, extra_fields: tuple[str, ...] = ()) -> None:
        if task.status == CANCELLING and status != CANCELLED:
            # Once cancelling, only cancelled may follow (found by the harness: 8 -> 9).
            raise _Cancelled
        now = time.time()
        task.status = status
        task.updated = now
        stamp = rfc3339(now)
        task.events.append({"id": f"ev_{len(task.events) + 1}", "created_at": stamp,
                            "event_time": stamp, "task_id": task.id, "status": status})
        self._log(task, message, log_type, now)
        if status in TERMINAL:
            task.finished = now
            self._finished[task.id] = now
        if change:
            self._changed(task, [*STATUS_FIELDS, *extra_fields])
        else:
            task.touch()

    def _log(self, task: Task, content: str, log_type: int, now: float) -> None:
        stamp = rfc3339(now)
        task.logs.append({"id": f"log_{len(task.logs) + 1}", "created_at": stamp,
                          "updated_at": stamp, "task_id": task.id, "log_type": log_type,
                          "content": content})

    def _changed(self, task: Task, fields: list[str]) -> None:
        task.touch()
        if task.subscribers:
            line = self.update_line(task, fields)
            item = (task.version, line, task.terminal)
            for queue in task.subscribers:
                queue.put_nowait(item)

    async def _wait(self, task: Task, seconds: float) -> None:
        """Sleep a scaled phase, waking early (and raising) on cancel."""
        if await sleep_unless(task.cancel_event, seconds / self.speed):
            raise _Cancelled

    async def _acquire(self, task: Task) -> Worker:
        loop = asyncio.get_running_loop()
        task.assigned = loop.create_future()
        self._pending.append(task)
        self._schedule()
        cancel_wait = loop.create_task(task.cancel_event.wait())
        try:
            waiters: set[asyncio.Future[Any]] = {task.assigned, cancel_wait}
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            cancel_wait.cancel()
        if task.assigned.done() and not task.assigned.cancelled():
            worker = task.assigned.result()
            if task.cancel_event.is_set():
                self._release(worker)
                raise _Cancelled
            return worker
        task.assigned.cancel()
        if task in self._pending:
            self._pending.remove(task)
        raise _Cancelled

    def _schedule(self) -> None:
        """Hand free workers to pending tasks in FIFO order (O(pending + free) per call)."""
        if not self._pending:
            return
        free_cloud = [w for w in self.workers if w.task_id is None and w.pool == "cloud"]
        free_private: dict[str, list[Worker]] = {}
        for w in self.workers:
            if w.task_id is None and w.owner is not None:
                free_private.setdefault(w.owner, []).append(w)
        if not free_cloud and not free_private:
            return
        still: deque[Task] = deque()
        while self._pending:
            task = self._pending.popleft()
            if task.assigned is None or task.assigned.done():
                continue
            private = free_private.get(task.owner, []) if task.infra != "cloud" else []
            cloud = free_cloud if task.infra != "private" else []
            if task.workers is not None:
                wanted = set(task.workers)
                private = [w for w in private if w.id in wanted]
                cloud = [w for w in cloud if w.id in wanted]
            # private_first: a free private worker if there is one (a warm cloud worker does not
            # outrank it), else cloud.
            free = private or cloud if task.infra == "private_first" else private + cloud
            if task.infra == "private_first" and Fault.PRIVATE_FIRST_TO_CLOUD in self.faults:
                free = cloud or private
            if not free:
                still.append(task)
                continue
            worker = self._pick(task, free)
            worker.task_id = task.id
            (free_cloud if worker.pool == "cloud" else free_private[task.owner]).remove(worker)
            task.assigned.set_result(worker)
        self._pending = still

    @staticmethod
    def _pick(task: Task, free: list[Worker]) -> Worker:
        setup = task.setup_key
        for worker in free:
            if worker.warm_app == task.app.name and worker.warm_setup == setup:
                return worker
        for worker in free:
            if worker.warm_app == task.app.name:
                return worker
        for worker in free:
            if worker.warm_app is None:
                return worker
        return free[0]

    def _release(self, worker: Worker) -> None:
        worker.task_id = None
        self._schedule()

    async def _drive(self, task: Task) -> None:
        worker: Worker | None = None
        try:
            await self._wait(task, RECEIVE_S)
            self._record(task, QUEUED, "waiting for a worker", LOG_TASK)
            if Fault.LOST_TASK in self.faults and task.ordinal % 5 == 0:
                await task.cancel_event.wait()
                raise _Cancelled
            worker = await self._acquire(task)
            task.worker_id = worker.id
            self._record(task, DISPATCHED, f"dispatched to worker {worker.id}", LOG_TASK,
                         extra_fields=("worker_id",))
            await self._wait(task, DISPATCH_S)
            setup = task.setup_key
            if Fault.SETUP_ALWAYS in self.faults:
                worker.warm_app, worker.warm_setup = None, None
            if worker.warm_app != task.app.name:
                worker.warm_app, worker.warm_setup = None, None
                self._record(task, PREPARING, f"preparing {task.app.name}", LOG_SERVE)
                await self._wait(task, PREPARE_S)
                self._record(task, SERVING, "loading model", LOG_SERVE)
                await self._wait(task, SERVE_S)
                worker.warm_app = task.app.name
            if worker.warm_setup != setup:
                self._record(task, SETTING_UP, f"setting up with {setup}", LOG_SETUP)
                await self._wait(task, SETUP_S)
                worker.warm_setup = setup
            worker.warm_owner = task.owner
            self._record(task, RUNNING, "running", LOG_RUN)
            if Fault.SPONTANEOUS_CANCEL in self.faults and task.ordinal % 4 == 0:
                self.cancel(task)
            for step in task.app.steps(task.parsed_input, task.parsed_setup):
                await self._wait(task, step.seconds)
                self._log(task, step.log, LOG_RUN, time.time())
                task.updated = time.time()
                self._changed(task, ["logs", "updated_at"])
            try:
                inputs = self._input_files(task)
                raw = task.app.result(task.parsed_input, task.parsed_setup, inputs)
            except AppFailure as failure:
                task.error = None if Fault.FAILED_WITHOUT_ERROR in self.faults else str(failure)
                self._record(task, FAILED, f"failed: {failure}", LOG_RUN,
                             extra_fields=("error",))
                return
            if task.app.uploads:
                self._record(task, UPLOADING, "uploading results", LOG_TASK)
                await self._wait(task, UPLOAD_S)
            output = self._store_outputs(task, raw)
            task.output = None if Fault.COMPLETED_WITHOUT_OUTPUT in self.faults else output
            self._record(task, COMPLETED, "completed", LOG_TASK, extra_fields=("output",))
        except _Cancelled:
            await asyncio.sleep(CANCEL_S / self.speed)
            if task.status != CANCELLING:
                self._record(task, CANCELLING, "cancelling", LOG_TASK)
            self._record(task, CANCELLED, "cancelled", LOG_TASK)
        finally:
            if worker is not None:
                self._release(worker)

    def _input_files(self, task: Task) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for name in task.app.file_fields:
            uri = getattr(task.parsed_input, name, None)
            if isinstance(uri, str):
                record = self.files.by_uri(uri, task.base_url)
                if record is None or record.data is None:
                    raise AppFailure(f"input file {name} is no longer available")
                out[uri] = record.data
        return out

    def _store_outputs(self, task: Task, raw: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in raw.items():
            if isinstance(value, OutputFile):
                record = self.files.create_with_bytes(task.owner, task.base_url, value.data,
                                                      value.content_type, value.filename)
                out[key] = {"uri": record.uri, "filename": value.filename,
                            "content_type": value.content_type, "size": len(value.data)}
            else:
                out[key] = value
        return out

    # -- retention -----------------------------------------------------------------------

    def evict(self, now: float | None = None) -> int:
        """Forget finished tasks past the age or count bound; return how many went."""
        now = time.time() if now is None else now
        dropped = 0
        while self._finished:
            task_id, finished = next(iter(self._finished.items()))
            if now - finished <= self.retention_seconds and len(self._finished) <= self.max_finished:
                break
            self._finished.popitem(last=False)
            self.tasks.pop(task_id, None)
            dropped += 1
        return dropped

    async def stop(self) -> None:
        for driver in list(self._drivers):
            driver.cancel()
        await asyncio.gather(*self._drivers, return_exceptions=True)


def _file_ids(output: Any) -> list[str]:
    if not isinstance(output, dict):
        return []
    ids = []
    for value in output.values():
        if isinstance(value, dict) and isinstance(value.get("uri"), str):
            parts = value["uri"].split("/files/", 1)
            if len(parts) == 2:
                ids.append(parts[1].split("/", 1)[0])
    return ids
