"""`python -m harness.suites.load.master PLAN.json`: run load phases headless, Locust as a library.

The harness process starts this in a child process so that gevent's monkey-patching stays
out of the harness (and of pytest). One process runs a LocalRunner (`processes == 1`), or a
MasterRunner bound to 127.0.0.1 with `processes - 1` local workers (`python -m
harness.suites.load.worker`) -- Locust's own master/worker mode -- or, with `master: true`, a
MasterRunner on `bind_host:bind_port` that waits for `expect_workers` workers from other
machines. Phases (one per scenario) run one after the other on the same runner; each phase
writes `<phase dir>/summary.json`, the merged `observations.jsonl` and Locust's stats CSVs
(`locust_stats.csv`, `locust_stats_history.csv`, `locust_failures.csv`,
`locust_exceptions.csv`). Progress goes to stdout as JSON lines; `result.json` lists the
phases at the end. Keys come from this process's environment only.
"""

from __future__ import annotations

from gevent import monkey  # type: ignore[import-untyped]

monkey.patch_all()

import argparse  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
from locust import events  # noqa: E402
from locust.env import Environment  # noqa: E402
from locust.log import setup_logging  # noqa: E402
from locust.stats import PERCENTILES_TO_REPORT, StatsCSV, StatsCSVFileWriter  # noqa: E402

from harness.settings import api_keys_from_env  # noqa: E402
from harness.suites.load import users as user_module  # noqa: E402
from harness.suites.load.config import LoadConfig  # noqa: E402
from harness.suites.load.scenarios import SCENARIOS, resolve  # noqa: E402
from harness.suites.load.session import session_of  # noqa: E402

USER_CLASSES = [getattr(user_module, name) for name in
                dict.fromkeys(n for s in SCENARIOS.values() for n in s.users)]


@dataclass
class RunPlan:
    """What the harness asks of the load processes (JSON; never a key)."""

    base_url: str
    phases: list[dict[str, Any]]
    users: int = 10
    spawn_rate: float = 10.0
    duration_s: float = 30.0
    processes: int = 1
    master: bool = False
    bind_host: str = "127.0.0.1"
    bind_port: int = 0
    expect_workers: int = 0
    worker_wait_s: float = 60.0
    drain_s: float = 30.0
    result: str = "result.json"
    log: str = "locust.log"
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, text: str) -> RunPlan:
        data = json.loads(text)
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)


T0 = time.monotonic()


def say(event: str, **data: Any) -> None:
    print(json.dumps({"event": event, "t": round(time.monotonic() - T0, 3), **data}), flush=True)


def _tick(runner: Any, scenario: str) -> None:
    """The phase's figures so far, for the live progress line of the harness process."""
    total = runner.stats.total
    p95 = total.get_current_response_time_percentile(0.95) if total.num_requests else None
    say("tick", scenario=scenario, requests=int(total.num_requests), errors=int(total.num_failures),
        rps=round(float(total.current_rps), 1), p95_ms=p95)


def _min_users(scenario_kind: str, keys: int, groups: int, users: int) -> int:
    """Limit scenarios need enough users to keep every key x group lane on its slots."""
    if scenario_kind == "flow":
        return users
    per_lane = 2 if scenario_kind == "at_limit" else 4
    return max(users, keys * groups * per_lane)


def _start_workers(count: int, port: int, log_dir: Path) -> list[subprocess.Popen[bytes]]:
    children = []
    for index in range(count):
        with (log_dir / f"worker{index + 1}.log").open("wb") as log_file:
            children.append(subprocess.Popen(
                [sys.executable, "-m", "harness.suites.load.worker", "--master-host", "127.0.0.1",
                 "--master-port", str(port)],
                stdout=log_file, stderr=subprocess.STDOUT, env=os.environ.copy()))
    return children


def _wait_ready(runner: Any, count: int, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if len(runner.clients.ready) >= count:
            return True
        gevent.sleep(0.1)
    return len(runner.clients.ready) >= count


def _write_final_csv(env: Environment, prefix: Path) -> None:
    stats_csv = StatsCSV(env, PERCENTILES_TO_REPORT)
    for suffix, method in (("_stats.csv", stats_csv.requests_csv),
                           ("_failures.csv", stats_csv.failures_csv),
                           ("_exceptions.csv", stats_csv.exceptions_csv)):
        with Path(str(prefix) + suffix).open("w", newline="") as handle:
            method(csv.writer(handle))


def run(plan: RunPlan) -> int:
    log_path = Path(plan.log)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    setup_logging("INFO", str(log_path))  # type: ignore[no-untyped-call]
    from locust import argument_parser

    parser: Any = argument_parser.get_empty_argument_parser()
    argument_parser.setup_parser_arguments(parser)  # type: ignore[no-untyped-call]
    options: Any = parser.parse(args=[])
    options.headless = True
    env = Environment(user_classes=USER_CLASSES, events=events, host=plan.base_url,
                      parsed_options=options, stop_timeout=0)
    distributed = plan.master or plan.processes > 1
    runner: Any
    children: list[subprocess.Popen[bytes]] = []
    if distributed:
        runner = env.create_master_runner(plan.bind_host, plan.bind_port)
        port = int(runner.server.port)
        say("master", host=plan.bind_host, port=port)
        local = plan.processes - 1 if not plan.master else max(0, plan.processes - 1)
        children = _start_workers(local, port, log_path.parent)
        wanted = local + plan.expect_workers
        if not _wait_ready(runner, wanted, plan.worker_wait_s):
            say("error", message=f"only {len(runner.clients.ready)} of {wanted} workers connected "
                f"within {plan.worker_wait_s:g} s")
            runner.quit()
            return 3
        workers = wanted
    else:
        runner = env.create_local_runner()
        workers = 1
    session = session_of(env)
    session.library = True
    hooks: Any = events
    hooks.init.fire(environment=env, runner=runner, web_ui=None)
    keys = len(api_keys_from_env())
    phases: list[dict[str, Any]] = []
    tasks_left: int | None = None
    try:
        for raw in plan.phases:
            config = LoadConfig.from_dict(raw)
            config.library = True
            if tasks_left is not None:
                config.max_tasks = max(0, tasks_left)
            scenario = resolve(config.scenario)
            phase_dir = Path(config.out_dir)
            phase_dir.mkdir(parents=True, exist_ok=True)
            classes = [c for c in USER_CLASSES if c.__name__ in scenario.users]
            groups = len([g for g in ("run", "get", "upload") if g in config.limits])
            users = _min_users(scenario.kind, max(1, keys), groups, plan.users)
            session.set_plan(config)
            writer = StatsCSVFileWriter(env, PERCENTILES_TO_REPORT, str(phase_dir / "locust"))
            writer_greenlet = gevent.spawn(writer.stats_writer)
            duration = plan.duration_s
            if scenario.kind != "flow":
                # The slots start at the next window boundary: run at least one whole window.
                window = config.window_s
                to_boundary = math.ceil(time.time() / window) * window - time.time()
                duration = max(duration, to_boundary + window + min(1.0, window / 4) + 0.5)
            say("phase", scenario=scenario.name, users=users, duration_s=round(duration, 1),
                workers=workers)
            started = time.monotonic()
            runner.start(users, max(plan.spawn_rate, users if scenario.kind != "flow" else 0),
                         user_classes=classes)
            end = started + duration
            next_tick = started + 1.0
            while time.monotonic() < end:
                gevent.sleep(0.2)
                if time.monotonic() >= next_tick:
                    next_tick += 1.0
                    _tick(runner, scenario.name)
                if runner.state == "running" and runner.user_count == 0:
                    say("note", message=f"{scenario.name}: every user stopped (task budget spent?)")
                    break
            say("draining", scenario=scenario.name)
            drained = session.drain(plan.drain_s)
            say("stopping", scenario=scenario.name, drained=drained)
            runner.stop()
            say("stopped", scenario=scenario.name)
            writer_greenlet.kill(block=True)
            writer.close_files()
            _write_final_csv(env, phase_dir / "locust")
            summary_path = phase_dir / "summary.json"
            summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
            summary["drained"] = drained
            summary["users"] = users
            summary["locust_exceptions"] = [
                {"count": row["count"], "msg": row["msg"], "traceback": row["traceback"][-1500:]}
                for row in runner.exceptions.values()]
            summary_path.write_text(json.dumps(summary, indent=1))
            created = int(summary.get("metrics", {}).get("counts", {}).get("tasks_created", 0))
            tasks_left = config.max_tasks - created
            phases.append({"scenario": scenario.name, "dir": str(phase_dir), "users": users,
                           "duration_s": round(time.monotonic() - started, 3)})
            say("phase_done", scenario=scenario.name, tasks_created=created,
                requests=summary.get("locust", {}).get("requests"))
            if distributed and not _wait_ready(runner, workers, 30.0):
                say("error", message="workers did not come back after the phase")
                break
    finally:
        runner.quit()
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        Path(plan.result).write_text(json.dumps({"phases": phases, "workers": workers}, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.suites.load.master")
    parser.add_argument("plan", type=Path, help="run plan (JSON)")
    args = parser.parse_args(argv)
    return run(RunPlan.from_json(args.plan.read_text()))


if __name__ == "__main__":
    sys.exit(main())
