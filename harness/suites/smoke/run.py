"""Smoke suite: every app through run, poll, stream, upload and cancel, with basic promises checked.

The conformance, lifecycle and rate-limit suites go deeper; this one proves the main paths
work end to end and catches the grossest faults fast.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from harness.checks.agents import reply_problem
from harness.checks.envelope import error_answer_gaps, task_of_update, title_gap
from harness.checks.placement import WorkerView, placement_problem, worker_view
from harness.checks.streams import StreamEnd
from harness.contract import Lifecycle, Limits
from harness.findings import Finding, SuiteResult
from harness.history import HistoryWriter, key_label
from harness.net.bounded import ANSWER_DEADLINE_S, unanswered
from harness.net.chats import STREAM, ChatRecorder, ChatSession, agent_config, finish, start, stop
from harness.net.client import (
    ApiClient,
    ForeignHost,
    Recorder,
    StreamFormat,
    StreamReading,
    json_of,
    response_data,
)
from harness.net.recording import ExchangeRecorder
from harness.net.repro import SECOND_KEY_VAR, curl
from harness.net.samples import PNG_1X1
from harness.profile import REFERENCE, AppRole, Profile

SUITE = "smoke"
CHECKS = {
    "ST-AUTH-REQUIRED": "a request with an unknown key is refused with 401 and a problem body",
    "ST-INVALID-INPUT": "input that fails the app's schema is refused with 422, not 5xx or 2xx",
    "ST-RUN-COMPLETES": "each app's task reaches Completed with an output object",
    "ST-FAIL-ERROR": "a failing app ends Failed with its error text",
    "ST-POLL-ORDER": "polled statuses are known integers, never go back, and a terminal one holds",
    "ST-STREAM-TERMINAL": "a stream ends with the terminal update and the server closes it",
    "ST-STREAM-AFTER-TERMINAL": "nothing is sent after the terminal update",
    "ST-STREAM-FORMAT": "a stream has the negotiated content type and only JSON-object events",
    "ST-UPLOAD-ROUNDTRIP": "uploaded bytes come back unchanged through an app's output file",
    "ST-CANCEL": "a cancelled running task ends Cancelled; cancelling it again answers 409",
    "ST-ISOLATION": "another key cannot read a task (404)",
    "ST-APP-NOT-FOUND": "a run naming an unknown app is refused with 404 app_not_found, no task",
    "ST-ERROR-TITLE": "the 401, unknown-app 404 and 422 problems carry the docs' titles",
    "ST-AGENT-REPLY": "a message to the profile's agent gets its reply: a chat starts, its stream ends, and "
                      "the chat ends with the agent's ready answer",
    "ST-WORKER-PLACEMENT": "a task runs on a worker its infra and workers allow (private_first: a free "
                           "private worker first)",
}


@dataclass
class SmokeOptions:
    deadline_s: float = 60.0
    poll_interval_s: float | None = None
    request_timeout_s: float = ANSWER_DEADLINE_S  # one whole answer; past it, indeterminate
    history: Path | None = None  # where every request is recorded (the run's observations)
    profile: Profile = field(default_factory=lambda: REFERENCE)


@dataclass
class _Run:
    """State of one smoke run."""

    client: ApiClient
    other: ApiClient | None
    lifecycle: Lifecycle
    profile: Profile
    poll_interval: float
    deadline_s: float
    findings: list[Finding] = field(default_factory=list)
    tasks_created: int = 0
    requests: int = 0
    placed: int = 0  # tasks whose worker was judged (ST-WORKER-PLACEMENT)
    unplaced: list[str] = field(default_factory=list)  # why a task's worker could not be judged
    # The documented error answers seen (code, answer, repro), for ST-ERROR-TITLE.
    errors: list[tuple[str, httpx.Response, str]] = field(default_factory=list)
    # Requests whose answer never came (the step they stopped), and the checks each step judges.
    indeterminate: list[dict[str, str]] = field(default_factory=list)
    judged: set[str] = field(default_factory=set)
    undecided: dict[str, str] = field(default_factory=dict)
    stranger_recorder: Recorder | None = None  # records the unknown key's requests
    key: str = ""  # the first key, for the agent conversation's own client
    chat_recorder: ChatRecorder | None = None

    def find(self, check: str, message: str, task_id: str | None = None,
             evidence: dict[str, Any] | None = None, repro: str | None = None) -> None:
        self.findings.append(Finding(check=check, suite=SUITE, message=message, task_id=task_id,
                                     evidence=evidence or {}, repro=repro))


def _excerpt(response: httpx.Response, limit: int = 600) -> dict[str, Any]:
    return {"request": f"{response.request.method} {response.request.url}",
            "status": response.status_code,
            "content_type": response.headers.get("content-type", ""),
            "body": response.text[:limit]}


def _is_problem(response: httpx.Response) -> bool:
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and {"type", "title", "status", "detail"} <= body.keys()


def _start(run: _Run, body: dict[str, Any], label: str) -> str | None:
    response = run.client.run(body)
    run.requests += 1
    task = response_data(response)
    if response.status_code >= 300 or not isinstance(task, dict) or "id" not in task:
        run.find("ST-RUN-COMPLETES", f"{label}: POST /apps/run answered {response.status_code} "
                 "without a task id", evidence=_excerpt(response),
                 repro=curl("POST", f"{run.client.base_url}/apps/run", body))
        return None
    run.tasks_created += 1
    return str(task["id"])


def _poll(run: _Run, task_id: str, label: str, late_check: str = "ST-RUN-COMPLETES",
          deadline_s: float | None = None) -> dict[str, Any] | None:
    """Poll GET /tasks/{id} to a terminal status, checking order; the final task or None.

    A task still open at the deadline is a `late_check` finding.
    """
    seen: list[int] = []
    deadline_s = run.deadline_s if deadline_s is None else deadline_s
    end = time.monotonic() + deadline_s
    url = f"{run.client.base_url}/tasks/{task_id}"
    while time.monotonic() < end:
        response = run.client.get_task(task_id)
        run.requests += 1
        task = response_data(response)
        if response.status_code != 200 or not isinstance(task, dict):
            run.find("ST-RUN-COMPLETES", f"{label}: GET /tasks/{{id}} answered "
                     f"{response.status_code}", task_id, _excerpt(response), curl("GET", url))
            return None
        status = task.get("status")
        if type(status) is not int or status not in run.lifecycle.statuses:
            run.find("ST-POLL-ORDER", f"{label}: status {status!r} is not an integer code of "
                     "the lifecycle", task_id, _excerpt(response), curl("GET", url))
            return None
        if seen and not run.lifecycle.may_follow(seen[-1], status):
            run.find("ST-POLL-ORDER", f"{label}: status went from "
                     f"{run.lifecycle.label(seen[-1])} to {run.lifecycle.label(status)}",
                     task_id, {"statuses_seen": [*seen, status], **_excerpt(response)},
                     curl("GET", url))
            return None
        if seen and run.lifecycle.is_terminal(seen[-1]):
            return task  # the terminal status held on a second read
        seen.append(status)
        if not run.lifecycle.is_terminal(status):
            time.sleep(run.poll_interval)
    run.find(late_check, f"{label}: no terminal status within {deadline_s:g} s",
             task_id, {"statuses_seen": seen})
    return None


def _check_auth(run: _Run, base_url: str) -> None:
    with ApiClient(base_url, "inf_harness_not_a_real_key") as stranger:
        stranger.recorder = run.stranger_recorder
        response = stranger.workers()
    run.requests += 1
    repro = curl("GET", f"{base_url}/workers", bearer="inf_harness_not_a_real_key")
    if response.status_code != 401 or not _is_problem(response):
        run.find("ST-AUTH-REQUIRED", f"an unknown key got {response.status_code}, expected 401 "
                 "with a problem body", evidence=_excerpt(response), repro=repro)
        return
    run.errors.append(("unauthorized", response, repro))


# An app ref no target serves: namespaced under the harness, so it cannot name a real app.
UNKNOWN_APP = {"app": "harness-probe/no-such-app", "input": {}}


def _check_app_not_found(run: _Run) -> None:
    response = run.client.run(UNKNOWN_APP)
    run.requests += 1
    repro = curl("POST", f"{run.client.base_url}/apps/run", UNKNOWN_APP)
    if response.status_code < 300:
        run.tasks_created += 1
    gaps = error_answer_gaps(response.status_code, json_of(response), 404, "app_not_found")
    if gaps:
        run.find("ST-APP-NOT-FOUND", f"a run of the unknown app {UNKNOWN_APP['app']!r}: "
                 + "; ".join(gaps), evidence=_excerpt(response), repro=repro)
        return
    run.errors.append(("app_not_found", response, repro))


def _check_titles(run: _Run) -> None:
    """Each documented error answer that came with the right status has the docs' title."""
    for code, response, repro in run.errors:
        gap = title_gap(json_of(response), code)
        if gap is not None:
            run.find("ST-ERROR-TITLE", f"{response.request.method} {response.request.url.path} "
                     f"({response.status_code} {code}): {gap}", evidence=_excerpt(response),
                     repro=repro)


def _check_invalid_input(run: _Run, role: AppRole) -> None:
    body = role.body()
    response = run.client.run(body)
    run.requests += 1
    if response.status_code < 300:
        run.tasks_created += 1
    repro = curl("POST", f"{run.client.base_url}/apps/run", body)
    if response.status_code != 422 or not _is_problem(response):
        run.find("ST-INVALID-INPUT", f"invalid input got {response.status_code}, expected 422 "
                 "with a problem body", evidence=_excerpt(response), repro=repro)
        return
    run.errors.append(("validation_failed", response, repro))


def _check_app(run: _Run, body: dict[str, Any], label: str,
               expect_output: dict[str, Any] | None = None) -> dict[str, Any] | None:
    task_id = _start(run, body, label)
    if task_id is None:
        return None
    task = _poll(run, task_id, label)
    if task is None:
        return None
    if task["status"] != run.lifecycle.completed or not isinstance(task.get("output"), dict):
        run.find("ST-RUN-COMPLETES", f"{label}: ended {run.lifecycle.label(task['status'])} with "
                 f"output {task.get('output')!r}, expected Completed with an output object",
                 task_id, {"task": task}, curl("GET", f"{run.client.base_url}/tasks/{task_id}"))
        return None
    if expect_output is not None and not _contains(task["output"], expect_output):
        run.find("ST-RUN-COMPLETES", f"{label}: the output does not contain the profile's "
                 f"expect_output {expect_output!r}", task_id, {"task": task})
        return None
    return task


def _workers_now(run: _Run) -> WorkerView | str:
    """GET /workers as the key sees it now, or why it cannot be read."""
    response = run.client.workers()
    run.requests += 1
    view = worker_view(response_data(response)) if response.status_code == 200 else None
    return view if view is not None else (f"GET /workers answered {response.status_code} without "
                                          "a list of workers")


def _placed_app(run: _Run, body: dict[str, Any], label: str,
                expect_output: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """`_check_app`, and where the task ran judged against GET /workers read just before it."""
    before = _workers_now(run)
    task = _check_app(run, body, label, expect_output)
    if task is None:
        return None
    worker_id = task.get("worker_id")
    if isinstance(before, str) or not isinstance(worker_id, str) or not worker_id:
        run.unplaced.append(before if isinstance(before, str) else "the target's tasks carry no worker_id")
        return task
    run.placed += 1
    problem = placement_problem(worker_id, body.get("infra"), body.get("workers"), before)
    if problem is not None:
        run.find("ST-WORKER-PLACEMENT", f"{label}: {problem}", task["id"],
                 {"infra": body.get("infra"), "workers": body.get("workers"), "worker_id": worker_id,
                  "free_private_before": before.free_private(),
                  "workers_before": len(before.pools)},
                 curl("GET", f"{run.client.base_url}/workers"))
    return task


# On the reference server: echo on private_first, then pinned to one private worker (the other
# smoke runs are on cloud, the default).
PLACEMENT_RUN = {"app": "infsh/echo", "input": {"message": "placement"}}


def _check_placement(run: _Run) -> None:
    """Reference server only (the profile's roles set no infra): private_first, then `workers`."""
    view = _workers_now(run)
    if isinstance(view, str):
        run.unplaced.append(view)
        return
    private = sorted(w for w, pool in view.pools.items() if pool == "private")
    bodies = [{**PLACEMENT_RUN, "infra": "private_first"}]
    if private:
        bodies.append({**PLACEMENT_RUN, "infra": "private", "workers": private[:1]})
    for body in bodies:
        _placed_app(run, body, f"placement: infsh/echo on {body['infra']}")


def _contains(value: Any, subset: Any) -> bool:
    """Whether `subset` is a JSON subset of `value` (objects by key, everything else equal)."""
    if isinstance(subset, dict):
        return isinstance(value, dict) and all(k in value and _contains(value[k], v)
                                               for k, v in subset.items())
    return bool(value == subset)


def _check_fail(run: _Run, role: AppRole) -> None:
    label = f"failing: {role.app}"
    task_id = _start(run, role.body(), label)
    if task_id is None:
        return
    task = _poll(run, task_id, label)
    # The reference apps fail with their input's message; any other app with some error text.
    wanted = str(role.input.get("message", "")) if run.profile.builtin else ""
    error = task.get("error") if task is not None else None
    if task is not None and (task["status"] != run.lifecycle.failed or not error
                             or wanted not in str(error)):
        run.find("ST-FAIL-ERROR", f"{label} ended {run.lifecycle.label(task['status'])} with "
                 f"error {error!r}", task_id, {"task": task})


def _check_stream(run: _Run, fmt: StreamFormat, body: dict[str, Any]) -> None:
    task_id = _start(run, body, f"stream {fmt}")
    if task_id is None:
        return
    reading = run.client.read_stream(task_id, fmt, run.deadline_s)
    if reading.unanswered is not None:
        # No head came: an answer that never came, not a broken stream (the step says so).
        raise NoAnswer(f"GET /tasks/{task_id}/stream", reading.unanswered)
    run.requests += 1
    _judge_stream(run, task_id, fmt, reading)


def _judge_stream(run: _Run, task_id: str, fmt: StreamFormat, reading: StreamReading) -> None:
    repro = curl("GET", f"{run.client.base_url}/tasks/{task_id}/stream", stream=True,
                 headers={"Accept": "application/x-ndjson" if fmt == "ndjson" else "text/event-stream"})
    tail = reading.raw_tail[-800:].decode("utf-8", "replace")
    evidence = {"format": fmt, "http_status": reading.status_code,
                "content_type": reading.content_type, "tail": tail, "error": reading.error}
    wanted = "application/x-ndjson" if fmt == "ndjson" else "text/event-stream"
    invalid = [t.event.raw[:200].decode("utf-8", "replace") for t in reading.events
               if t.event.kind == "invalid"]
    if reading.status_code != 200 or not reading.content_type.startswith(wanted) or invalid:
        run.find("ST-STREAM-FORMAT", f"{fmt} stream: HTTP {reading.status_code}, content type "
                 f"{reading.content_type!r}, {len(invalid)} non-JSON event(s)", task_id,
                 {**evidence, "invalid": invalid[:3]}, repro)
        return
    statuses = [task_of_update(u).get("status") for u in reading.updates]
    end = StreamEnd()
    for status in statuses:
        end.feed("update", isinstance(status, int) and run.lifecycle.is_terminal(status))
    terminal_at = end.terminal_at
    if terminal_at is None or not reading.closed_by_server:
        why = "timed out" if reading.timed_out else "closed" if reading.closed_by_server else \
            "broke off"
        run.find("ST-STREAM-TERMINAL", f"{fmt} stream {why} after statuses {statuses} without "
                 "a terminal update" if terminal_at is None else
                 f"{fmt} stream sent the terminal update but was not closed by the server",
                 task_id, {**evidence, "statuses": statuses}, repro)
        return
    if end.after:
        run.find("ST-STREAM-AFTER-TERMINAL", f"{fmt} stream sent {len(end.after)}"
                 f" update(s) after the terminal status {statuses[terminal_at]}", task_id,
                 {**evidence, "statuses": statuses}, repro)


def _check_upload(run: _Run, role: AppRole) -> None:
    created = run.client.create_file("smoke.png", "image/png", len(PNG_1X1))
    run.requests += 1
    files = response_data(created)
    if created.status_code >= 300 or not isinstance(files, list) or not files \
            or not files[0].get("upload_url"):
        run.find("ST-UPLOAD-ROUNDTRIP", f"POST /files answered {created.status_code} without an "
                 "array of files with an upload_url", evidence=_excerpt(created))
        return
    record = files[0]
    try:
        put = run.client.put_bytes(record["upload_url"], PNG_1X1, "image/png")
    except ForeignHost as refused:
        run.find("ST-UPLOAD-ROUNDTRIP", f"the upload URL: {refused}", evidence=_excerpt(created))
        return
    if put.status_code >= 300:
        run.find("ST-UPLOAD-ROUNDTRIP", f"PUT to the upload URL without auth answered "
                 f"{put.status_code}", evidence=_excerpt(put))
        return
    task = _check_app(run, role.body(file_uri=record["uri"]), f"file: {role.app} with an uploaded file",
                      role.expect_output)
    if task is None:
        return
    if not run.profile.builtin:
        # Another app's output is its own: the bytes must come back from the file's own URI.
        task = {**task, "output": {"image": {"uri": record.get("uri")}}}
    image = task["output"].get("image")
    uri = image.get("uri") if isinstance(image, dict) else None
    if not isinstance(uri, str):
        run.find("ST-UPLOAD-ROUNDTRIP", "output.image has no uri", task["id"], {"task": task})
        return
    try:
        got = run.client.download(uri)
    except ForeignHost as refused:
        run.find("ST-UPLOAD-ROUNDTRIP", f"the output file's URI: {refused}", task["id"], {"uri": uri})
        return
    if got.status_code != 200 or got.content != PNG_1X1:
        run.find("ST-UPLOAD-ROUNDTRIP", f"downloaded output ({got.status_code}, "
                 f"{len(got.content)} bytes) differs from the {len(PNG_1X1)} bytes uploaded",
                 task["id"], {"uploaded_hex": PNG_1X1.hex(), "downloaded_hex": got.content[:200].hex(),
                              "uri": uri, "request": f"GET {uri}", "status": got.status_code},
                 curl("GET", uri, auth=False, show_headers=False) + " | xxd")


def _check_cancel(run: _Run, role: AppRole) -> None:
    task_id = _start(run, role.body(), f"slow: {role.app}")
    if task_id is None:
        return
    url = f"{run.client.base_url}/tasks/{task_id}/cancel"
    time.sleep(run.poll_interval)
    first = run.client.cancel(task_id)
    run.requests += 1
    if first.status_code >= 300:
        run.find("ST-CANCEL", f"cancel of a running task answered {first.status_code}", task_id,
                 _excerpt(first), curl("POST", url))
        return
    # A cancelled task ends within seconds; one that runs on ignored the cancel.
    task = _poll(run, task_id, f"cancelled {role.app}", "ST-CANCEL", min(run.deadline_s, 10.0))
    if task is None:
        return
    if task["status"] != run.lifecycle.cancelled:
        run.find("ST-CANCEL", f"cancelled task ended {run.lifecycle.label(task['status'])}",
                 task_id, {"task": task})
        return
    again = run.client.cancel(task_id)
    run.requests += 1
    if again.status_code != 409 or not _is_problem(again):
        run.find("ST-CANCEL", f"cancel of an ended task answered {again.status_code}, expected "
                 "409 with a problem body", task_id, _excerpt(again), curl("POST", url))


AGENT_MESSAGE = "Hello! Who are you, in one sentence?"


def _check_agent(run: _Run, role: AppRole) -> None:
    """One message to the profile's agent, read as the SDK's `agent.send_message` does."""
    session = ChatSession(run.client.base_url, run.key, run.client.deadline_s, run.chat_recorder)
    try:
        started = time.monotonic()
        conv = start(session, role, AGENT_MESSAGE, [], "smoke")
        if conv.chat_id and 200 <= conv.start_status < 300:
            read = session.read_stream(conv.chat_id, conv, started, run.deadline_s, lambda _event: None)
            if read is None:
                raise NoAnswer(STREAM, "no head before the deadline")
            finish(session, conv)
        if conv.chat_id and not conv.closed_by_server:
            stop(session, conv, started, "unknown")  # no run is left working after the suite
    finally:
        run.requests += session.requests
        session.close()
    problem = reply_problem(conv)
    if problem is not None:
        run.find("ST-AGENT-REPLY", f"{role.app}: {problem}",
                 evidence={"chat_id": conv.chat_id, "start_status": conv.start_status,
                           "events": len(conv.events), "final_chat": str(conv.final_chat)[:600]},
                 repro=curl("POST", f"{run.client.base_url}/agents/run",
                            {"input": {"text": AGENT_MESSAGE}, "agent_config": agent_config(role, [])}))


def _check_isolation(run: _Run, task_id: str) -> None:
    if run.other is None:
        return
    response = run.other.get_task(task_id)
    run.requests += 1
    if response.status_code != 404:
        run.find("ST-ISOLATION", f"a second key read another key's task: HTTP "
                 f"{response.status_code}", task_id, _excerpt(response),
                 curl("GET", f"{run.client.base_url}/tasks/{task_id}", key_var=SECOND_KEY_VAR))


# Runs to completion on the reference server beside the profile's roles: a multi-phase sleep and
# an image, so ST-RUN-COMPLETES sees every phase the reference apps have.
REFERENCE_EXTRAS = (
    ("infsh/sleep", {"app": "infsh/sleep", "input": {"seconds": 0.5}}),
    ("infsh/image", {"app": "infsh/image", "input": {"width": 4, "height": 4}}),
)
# Which checks need which role (a check is skipped when its role is not mapped).
NEEDS: dict[str, str] = {"ST-INVALID-INPUT": "invalid", "ST-RUN-COMPLETES": "quick",
                         "ST-FAIL-ERROR": "failing", "ST-STREAM-TERMINAL": "quick",
                         "ST-STREAM-AFTER-TERMINAL": "quick", "ST-STREAM-FORMAT": "quick",
                         "ST-POLL-ORDER": "quick", "ST-UPLOAD-ROUNDTRIP": "file", "ST-CANCEL": "slow",
                         "ST-ISOLATION": "quick", "ST-AGENT-REPLY": "agent"}


def _plan(profile: Profile) -> tuple[dict[str, AppRole], dict[str, str]]:
    """The roles this run uses, and the checks skipped for want of a role."""
    plan = {name: role for name, role in profile.roles.items()}
    skipped = {check: f"the profile maps no {role!r} app ([apps.{role}] in harness.toml)"
               for check, role in NEEDS.items() if role not in plan}
    if "file" in plan and not plan["file"].takes_file:
        skipped["ST-UPLOAD-ROUNDTRIP"] = 'the file role\'s input has no "$FILE"'
        del plan["file"]
    return plan, skipped


# The checks each step judges (a step whose answer never came leaves them undecided).
APP_CHECKS = ("ST-RUN-COMPLETES", "ST-POLL-ORDER")
STREAM_CHECKS = ("ST-STREAM-TERMINAL", "ST-STREAM-AFTER-TERMINAL", "ST-STREAM-FORMAT")
STEP_CHECKS: dict[str, tuple[str, ...]] = {
    "auth": ("ST-AUTH-REQUIRED", "ST-ERROR-TITLE"), "unknown app": ("ST-APP-NOT-FOUND",),
    "invalid input": ("ST-INVALID-INPUT",), "placement": ("ST-WORKER-PLACEMENT", *APP_CHECKS),
    "failing": ("ST-FAIL-ERROR", "ST-POLL-ORDER"), "stream ndjson": STREAM_CHECKS,
    "stream sse": STREAM_CHECKS, "upload": ("ST-UPLOAD-ROUNDTRIP", *APP_CHECKS),
    "cancel": ("ST-CANCEL", "ST-POLL-ORDER"), "isolation": ("ST-ISOLATION",), "agent": ("ST-AGENT-REPLY",),
}
Step = tuple[str, Callable[[], Any]]


def _step_checks(label: str) -> tuple[str, ...]:
    return STEP_CHECKS.get(label, APP_CHECKS)  # the app runs are labelled by their app


def _request_line(exc: httpx.HTTPError) -> str:
    try:
        request = exc.request
    except RuntimeError:  # httpx raises when the error carries no request
        return "a request"
    return f"{request.method} {request.url.path}"


class NoAnswer(Exception):
    """A step's request whose answer never came, found without an exception of httpx (a stream
    read returns what it got): the step stops, indeterminate."""

    def __init__(self, request: str, error: str) -> None:
        super().__init__(f"{request}: {error}")
        self.request, self.error = request, error


def _run_step(run: _Run, label: str, step: Callable[[], Any]) -> None:
    """One step; an answer that never came makes it indeterminate (counted), never a crash."""
    try:
        step()
    except httpx.TimeoutException as exc:
        if not unanswered(exc):
            raise
        _indeterminate(run, label, _request_line(exc), type(exc).__name__)
        return
    except NoAnswer as exc:
        _indeterminate(run, label, exc.request, exc.error)
        return
    run.judged.update(_step_checks(label))


def _indeterminate(run: _Run, label: str, sent: str, error: str) -> None:
    run.requests += 1
    run.indeterminate.append({"step": label, "request": sent, "error": error})
    for check in _step_checks(label):
        run.undecided.setdefault(check, f"indeterminate: {sent} ({label}) got no answer")


def _steps(run: _Run, base_url: str, plan: dict[str, AppRole],
           done: dict[str, dict[str, Any] | None]) -> list[Step]:
    def app_step(key: str, body: dict[str, Any], label: str,
                 expect: dict[str, Any] | None = None) -> Step:
        # A role that says where to run is judged on where it ran.
        check = _placed_app if "infra" in body or "workers" in body else _check_app

        def step() -> None:
            done[key] = check(run, body, label, expect)
        return label, step

    steps: list[Step] = [("auth", lambda: _check_auth(run, base_url)),
                         ("unknown app", lambda: _check_app_not_found(run))]
    if "invalid" in plan:
        steps.append(("invalid input", lambda: _check_invalid_input(run, plan["invalid"])))
    for name in ("quick", "setup", "flow"):
        if name in plan:
            role = plan[name]
            steps.append(app_step(name, role.body(), f"{name}: {role.app}", role.expect_output))
    if run.profile.builtin:
        steps += [app_step(label, body, label) for label, body in REFERENCE_EXTRAS]
        steps.append(("placement", lambda: _check_placement(run)))
    if "failing" in plan:
        steps.append(("failing", lambda: _check_fail(run, plan["failing"])))
    if "quick" in plan:
        # On the reference server a task that lasts a moment, so the stream carries more than
        # the final snapshot; elsewhere the quick app.
        stream_body = ({"app": "infsh/sleep", "input": {"seconds": 2}} if run.profile.builtin
                       else plan["quick"].body())
        steps += [("stream ndjson", lambda: _check_stream(run, "ndjson", stream_body)),
                  ("stream sse", lambda: _check_stream(run, "sse", stream_body))]
    if "file" in plan:
        steps.append(("upload", lambda: _check_upload(run, plan["file"])))
    if "slow" in plan:
        steps.append(("cancel", lambda: _check_cancel(run, plan["slow"])))
    if "agent" in plan:
        steps.append(("agent", lambda: _check_agent(run, plan["agent"])))
    return steps


def run_smoke(base_url: str, keys: list[str], lifecycle: Lifecycle, limits: Limits,
              options: SmokeOptions | None = None,
              progress: Callable[[str], None] | None = None) -> SuiteResult:
    """Run every smoke check against `base_url` with the first key (the second for isolation)."""
    options = options or SmokeOptions()
    get_budget = limits.groups["get"].limit / limits.window_seconds
    interval = options.poll_interval_s or max(0.05, 2.0 / get_budget)
    started = time.monotonic()
    note = progress or (lambda _msg: None)
    profile = options.profile
    plan, skipped = _plan(profile)
    timeout = options.request_timeout_s
    writer = HistoryWriter(options.history) if options.history is not None else None
    with ApiClient(base_url, keys[0], timeout) as client:
        other = ApiClient(base_url, keys[1], timeout) if len(keys) > 1 else None
        run = _Run(client, other, lifecycle, profile, interval, options.deadline_s, key=keys[0])
        if writer is not None:
            run.chat_recorder = ChatRecorder(writer, SUITE, key_label(0))
            recorder = ExchangeRecorder(writer, SUITE, key_label(0))
            client.recorder, run.stranger_recorder = recorder, recorder.as_key(None)
            if other is not None:
                other.recorder = recorder.as_key(key_label(1))
        done: dict[str, dict[str, Any] | None] = {}
        try:
            steps = _steps(run, base_url, plan, done)
            for index, (label, step) in enumerate(steps, 1):
                note(f"smoke {index}/{len(steps)}: {label}")
                _run_step(run, label, step)
            quick = done.get("quick")
            if quick is not None:
                _run_step(run, "isolation", lambda: _check_isolation(run, quick["id"]))
            _check_titles(run)
        finally:
            if other is not None:
                other.close()
            if writer is not None:
                writer.close()
    if len(keys) < 2:
        skipped["ST-ISOLATION"] = "one API key: isolation needs a second (--api-key twice)"
    elif done.get("quick") is None:
        skipped.setdefault("ST-ISOLATION", "no quick task completed to probe with the second key")
    if not run.placed:
        # Never a vacuous pass: no task's worker was judged.
        skipped["ST-WORKER-PLACEMENT"] = (run.unplaced[0] if run.unplaced else
                                          "no role of the profile sets infra or workers "
                                          "([apps.<role>] infra = \"private_first\" in harness.toml)")
    if not run.errors:
        skipped.setdefault("ST-ERROR-TITLE", "no documented error answer came with its status to judge")
    found = {f.check for f in run.findings}
    for check, why in run.undecided.items():
        # Never a vacuous pass: a check no step finished judging is reported undecided.
        if check not in run.judged and check not in found:
            skipped.setdefault(check, why)
    checks = [c for c in CHECKS if c not in skipped]
    return SuiteResult(
        name=SUITE,
        status="failed" if run.findings else "passed",
        checks=checks,
        metrics={"tasks_created": run.tasks_created, "requests": run.requests,
                 "poll_interval_s": round(interval, 3),
                 "indeterminate": len(run.indeterminate),
                 "indeterminate_requests": run.indeterminate[:10]},
        findings=run.findings,
        duration_s=round(time.monotonic() - started, 3),
        skipped=skipped,
    )
