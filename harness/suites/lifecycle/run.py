"""Lifecycle suite: many observers on the same tasks at once, then the invariant checker.

Tasks of every app are created at a paced rate; for each, observers poll GET and /status,
read NDJSON and SSE streams, cancel at random moments, and a second key probes isolation.
Every answer and stream event goes to observations.jsonl as it happens; the checker then
reads the file back and judges the whole history. Beside the tasks, agent chats are held at once
(`chats.py`): their requests go to the same history, and what their readers saw is judged with the
AG- rules.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.checks.agents import CHECKS as AG_CHECKS
from harness.checks.lifecycle import CHECKS, InvariantOptions, check_history
from harness.contract import Lifecycle, Limits
from harness.findings import Finding, SuiteResult
from harness.history import HistoryWriter, read_records
from harness.net.client import ApiClient, ForeignHost, response_data
from harness.net.recording import RecordingClient
from harness.net.samples import PNG_1X1
from harness.profile import REFERENCE, AppRole, Profile
from harness.suites.lifecycle.chats import ChatOptions, ChatRunner, chat_metrics, plan_chats

SUITE = "lifecycle"


@dataclass
class LifecycleOptions:
    clients: int = 8
    tasks: int = 24
    deadline_s: float = 60.0
    seed: int | None = None
    heartbeat_bound_s: float | None = 15.0
    cancel_share: float = 0.25
    profile: Profile = field(default_factory=lambda: REFERENCE)
    chats: int = 0  # agent chats held beside the tasks (the suite passes --chats, default 3)
    chat_turns: int = 3
    chat_budget: int = 500  # billable runs the chats may start (each turn is one)
    chat_stop_deadline_s: float = 10.0  # a stopped run ends canceled within this
    out_dir: Path | None = None  # the run folder: lifecycle/conversations.jsonl goes there


@dataclass
class _Plan:
    body: dict[str, Any]
    cancel_after: float | None = None
    warm_expected: bool = False
    upload: bool = False


@dataclass
class _Shared:
    history: HistoryWriter
    jobs: queue.Queue[Callable[[RecordingClient], None] | None] = field(default_factory=queue.Queue)
    cancels: list[tuple[float, str]] = field(default_factory=list)
    tasks_created: int = 0
    refused_runs: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


# Reference-server variations beside the profile's roles: more phases and a second setup, so
# the history shows every status and a cold/warm mix on the reference apps.
REFERENCE_EXTRAS = (
    {"app": "infsh/sleep", "input": {"seconds": 1}},
    {"app": "infsh/image", "input": {"width": 2, "height": 2}},
    {"app": "infsh/flux", "setup": {"model": "dev"}, "input": {"prompt": "q"}},
)


def _plans(rng: random.Random, count: int, private: list[str], share: float,
           profile: Profile) -> list[_Plan]:
    roles = profile.roles
    basic = [_Plan(roles[name].body()) for name in ("quick", "failing", "setup", "flow") if name in roles]
    if profile.builtin:
        basic += [_Plan(dict(body)) for body in REFERENCE_EXTRAS]
    if "file" in roles and roles["file"].takes_file:
        basic.append(_Plan(roles["file"].body(), upload=True))
    if private and "quick" in roles:
        basic += [_Plan(roles["quick"].body(infra="private")),
                  _Plan(roles["quick"].body(infra="private_first"))]
    # Cancelled at a random moment (any phase, queued included): a task that never ends by
    # itself, or one that would end soon (so an ignored cancel shows as such).
    cancellable = [roles[name].body() for name in ("setup", "slow") if name in roles]
    if profile.builtin:  # flux with the dev setup runs a few seconds: long enough to be cancelled
        cancellable = [dict(REFERENCE_EXTRAS[2]), roles["slow"].body()]
    plans = []
    for index in range(count):
        if cancellable and rng.random() < share:
            plans.append(_Plan(cancellable[index % len(cancellable)], cancel_after=rng.uniform(0.0, 0.6)))
        elif basic:
            plans.append(basic[index % len(basic)])
    return plans


def _poll(task_id: str, deadline: float, interval: float, use_status: bool,
          lifecycle: Lifecycle) -> Callable[[RecordingClient], None]:
    def job(client: RecordingClient) -> None:
        confirmed = False
        while time.monotonic() < deadline:
            _, data = (client.status if use_status else client.get)(task_id)
            status = data.get("status") if isinstance(data, dict) else None
            if type(status) is int and lifecycle.is_terminal(status):
                if confirmed:
                    return
                confirmed = True  # one more read: a terminal status must hold
            time.sleep(interval)
    return job


def _stream(task_id: str, fmt: str, deadline: float) -> Callable[[RecordingClient], None]:
    def job(client: RecordingClient) -> None:
        client.stream(task_id, "ndjson" if fmt == "ndjson" else "sse",
                      max(0.5, deadline - time.monotonic()))
    return job


def _probe(task_id: str) -> Callable[[RecordingClient], None]:
    def job(client: RecordingClient) -> None:
        client.get(task_id)
        client.status(task_id)
        client.stream(task_id, "ndjson", 2.0)
        client.cancel(task_id)
    return job


def _worker(shared: _Shared, client: RecordingClient) -> None:
    while True:
        job = shared.jobs.get()
        if job is None:
            return
        try:
            job(client)
        finally:
            shared.jobs.task_done()


def _canceller(shared: _Shared, client: RecordingClient, stop: threading.Event) -> None:
    while not stop.is_set() or shared.cancels:
        with shared.lock:
            shared.cancels.sort()
            due = [c for c in shared.cancels if c[0] <= time.monotonic()]
            shared.cancels[:] = [c for c in shared.cancels if c[0] > time.monotonic()]
        for _, task_id in due:
            client.cancel(task_id)
        time.sleep(0.005)


def _private_workers(client: ApiClient) -> list[str]:
    response = client.workers()
    data = response_data(response) if response.status_code == 200 else None
    if not isinstance(data, list):
        return []
    return [w["id"] for w in data if isinstance(w, dict) and w.get("pool") == "private"
            and isinstance(w.get("id"), str)]


def _upload(runner: RecordingClient) -> str | None:
    created = runner.client.create_file("lifecycle.png", "image/png", len(PNG_1X1))
    files = response_data(created)
    if created.status_code >= 300 or not isinstance(files, list) or not files:
        return None
    try:
        if runner.client.put_bytes(files[0]["upload_url"], PNG_1X1, "image/png").status_code >= 300:
            return None
    except ForeignHost:  # the smoke suite reports it; the lifecycle runs without the upload plan
        return None
    uri = files[0].get("uri")
    return uri if isinstance(uri, str) else None


def _warm_pair(runner: RecordingClient, worker: str, deadline_s: float, lifecycle: Lifecycle,
               interval: float, setup: AppRole) -> list[str]:
    """Run the same app and setup twice on one pinned worker; the second run must be warm."""
    body = setup.body(infra="private", workers=[worker])
    ids: list[str] = []
    for warm in (False, True):
        _, data = runner.run(body, deadline_s, warm_expected=warm)
        if not isinstance(data, dict) or "id" not in data:
            return ids
        ids.append(data["id"])
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            _, task = runner.get(data["id"])
            if isinstance(task, dict) and type(task.get("status")) is int and \
                    lifecycle.is_terminal(task["status"]):
                break
            time.sleep(interval)
    return ids


def _start_chats(base_url: str, keys: list[str], history: HistoryWriter, options: LifecycleOptions,
                 seed: int, limits: Limits, note: Callable[[str], None]
                 ) -> tuple[ChatRunner | None, dict[str, str]]:
    """The planned chats started (None, with why every AG- check is skipped, when there are none)."""
    role = options.profile.get("agent")
    why = None
    if role is None:
        why = "the profile maps no 'agent' role ([apps.agent] in harness.toml)"
    elif options.chats < 1:
        why = "no chats asked for (--chats 0)"
    plans = [] if why else plan_chats(seed, options.chats, options.chat_turns, options.chat_budget)
    if why is None and not plans:
        why = "task budget (--max-tasks) spent"
    if why is not None or role is None:
        return None, {check: why or "" for check in AG_CHECKS}
    # A quarter of the run and get budgets (the tasks take half): each chat's poller, and the
    # turns of every chat together.
    get_rate = limits.groups["get"].limit / limits.window_seconds
    run_rate = limits.groups["run"].limit / limits.window_seconds
    runner = ChatRunner(base_url, keys, role, history, ChatOptions(
        deadline_s=options.deadline_s, stop_deadline_s=options.chat_stop_deadline_s,
        poll_interval_s=max(0.05, 2 * len(plans) / (0.25 * get_rate)),
        turn_gap_s=len(plans) / (0.25 * run_rate), out_dir=options.out_dir))
    note(f"lifecycle: {len(plans)} chats, {sum(len(p.turns) for p in plans)} turns")
    runner.start(plans)
    return runner, {}


def run_lifecycle(base_url: str, keys: list[str], lifecycle: Lifecycle, limits: Limits,
                  history_path: Path, options: LifecycleOptions | None = None,
                  progress: Callable[[str], None] | None = None) -> SuiteResult:
    """Drive tasks through every channel at once, record everything, check the history."""
    options = options or LifecycleOptions()
    note = progress or (lambda _m: None)
    seed = options.seed if options.seed is not None else random.randrange(2**32)
    rng = random.Random(seed)
    started = time.monotonic()
    get_rate = limits.groups["get"].limit / limits.window_seconds
    run_rate = limits.groups["run"].limit / limits.window_seconds
    # Stay at half of each budget: this suite checks lifecycles, not limits.
    poll_interval = max(0.02, (options.clients + 1) / (0.5 * get_rate))
    run_gap = 1.0 / (0.5 * run_rate)
    with HistoryWriter(history_path) as history:
        shared = _Shared(history)
        clients = [ApiClient(base_url, keys[0]) for _ in range(options.clients + 2)]
        foreign_api = ApiClient(base_url, keys[1]) if len(keys) > 1 else None
        try:
            runner = RecordingClient(clients[0], history, "runner", "key1")
            canceller = RecordingClient(clients[1], history, "canceller", "key1")
            observers = [RecordingClient(c, history, f"c{i + 1}", "key1")
                         for i, c in enumerate(clients[2:])]
            foreign = RecordingClient(foreign_api, history, "foreign", "key2", probe="foreign") \
                if foreign_api else None
            private = _private_workers(clients[0])
            threads = [threading.Thread(target=_worker, args=(shared, o), daemon=True) for o in observers]
            stop = threading.Event()
            cancel_thread = threading.Thread(target=_canceller, args=(shared, canceller, stop), daemon=True)
            for thread in [*threads, cancel_thread]:
                thread.start()
            chats, chats_skipped = _start_chats(base_url, keys, history, options, seed, limits, note)
            plans = _plans(rng, options.tasks, private, options.cancel_share, options.profile)
            upload_uri = None
            for index, plan in enumerate(plans, 1):
                body = dict(plan.body)
                if plan.upload:
                    upload_uri = upload_uri or _upload(runner)
                    if upload_uri is None:
                        continue
                    body = options.profile.roles["file"].body(file_uri=upload_uri)
                response, data = runner.run(body, options.deadline_s)
                if response is None or not isinstance(data, dict) or "id" not in data:
                    shared.refused_runs += 1
                    continue
                shared.tasks_created += 1
                task_id = data["id"]
                deadline = time.monotonic() + options.deadline_s
                shared.jobs.put(_poll(task_id, deadline, poll_interval, False, lifecycle))
                shared.jobs.put(_poll(task_id, deadline, poll_interval, True, lifecycle))
                shared.jobs.put(_stream(task_id, "ndjson", deadline))
                shared.jobs.put(_stream(task_id, "sse", deadline))
                if plan.cancel_after is not None:
                    with shared.lock:
                        shared.cancels.append((time.monotonic() + plan.cancel_after, task_id))
                if foreign is not None and index % 4 == 1:
                    foreign_job = _probe(task_id)
                    foreign_job(foreign)
                if index % 5 == 0:
                    note(f"lifecycle: {index}/{len(plans)} tasks started, {history.count} observations")
                time.sleep(run_gap)
            warm_ids: list[str] = []
            setup = options.profile.get("setup")
            if private and setup is not None:
                note(f"lifecycle: warm-setup pair on private worker {private[0]}")
                warm_ids = _warm_pair(runner, private[0], options.deadline_s, lifecycle, poll_interval,
                                      setup)
                shared.tasks_created += len(warm_ids)
            note("lifecycle: waiting for observers")
            shared.jobs.join()
            stop.set()
            for _ in threads:
                shared.jobs.put(None)
            for thread in [*threads, cancel_thread]:
                thread.join(timeout=options.deadline_s)
            if chats is not None:
                note("lifecycle: waiting for the chats")
                chats.join(options.chat_turns * (options.deadline_s + options.chat_stop_deadline_s + 10.0))
        finally:
            for c in clients:
                c.close()
            if foreign_api is not None:
                foreign_api.close()
        observed = history.count
    note(f"lifecycle: checking {observed} observations")
    report = check_history(read_records(history_path), lifecycle,
                           InvariantOptions(heartbeat_bound_s=options.heartbeat_bound_s))
    skipped: dict[str, str] = {}
    if len(keys) < 2:
        skipped["LC-ISOLATION"] = "one API key: isolation needs a second (--api-key twice)"
    if not private:
        skipped["LC-SETUP-WARM"] = "the target lists no private workers (GET /workers) to pin a warm pair on"
    elif "setup" not in options.profile.roles:
        skipped["LC-SETUP-WARM"] = "the profile maps no 'setup' app ([apps.setup] in harness.toml)"
    if "slow" not in options.profile.roles and "setup" not in options.profile.roles:
        for check in ("LC-CANCEL-IGNORED", "LC-CANCEL-UNREQUESTED"):
            skipped[check] = "the profile maps no 'slow' (or 'setup') app to cancel"
    chat_findings: list[Finding] = []
    chat_facts: dict[str, Any] = {}
    if chats is not None:
        chat_findings, chats_skipped = chats.judge(seed, options.chat_stop_deadline_s)
        chat_facts = chat_metrics(chats.tally, chats.conversations)
    skipped.update(chats_skipped)
    checks = [c for c in (*CHECKS, *AG_CHECKS) if c not in skipped]
    findings = [*report.findings, *chat_findings]
    return SuiteResult(
        name=SUITE,
        status="failed" if findings else "passed",
        checks=checks,
        metrics={"seed": seed, "tasks_created": shared.tasks_created + chat_facts.get("chat_turns", 0),
                 "refused_runs": shared.refused_runs,
                 "clients": options.clients, "poll_interval_s": round(poll_interval, 3),
                 "history": history_path.name, **report.metrics, **chat_facts},
        findings=findings,
        duration_s=round(time.monotonic() - started, 3),
        skipped=skipped,
    )
