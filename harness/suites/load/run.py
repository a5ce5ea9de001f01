"""Load suite: Locust scenarios (headless, Locust as a library) turned into findings and metrics.

Locust and gevent run in child processes (`python -m harness.suites.load.master`, plus `--processes
N - 1` local workers in Locust's master/worker mode), never in the harness process: gevent's
monkey-patching would change threading, sockets and subprocesses under the other suites (and
pytest). The children write the run folder (`load/<scenario>/`: Locust stats CSVs, per-worker
and merged histories, `summary.json` with HDR histograms); this process then checks the
merged history with the lifecycle invariants, the rate-limit behaviour of the limit
scenarios, the thresholds and the error counts, and appends the history to the run's
`observations.jsonl`.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.argtypes import positive_float, positive_int
from harness.checks.lifecycle import InvariantOptions
from harness.checks.thresholds import (
    ThresholdError,
    parse_threshold,
    parse_thresholds,
    thresholds_from_toml,
)
from harness.contract import Lifecycle, Limits
from harness.findings import SuiteResult
from harness.settings import DEFAULT_TOML, is_loopback
from harness.suites.load.analysis import CHECKS, analyse_phases
from harness.suites.load.config import LoadConfig, parse_duration, parse_rate
from harness.suites.load.scenarios import SCENARIOS, phase_order, resolve

if TYPE_CHECKING:
    from harness.runner import Context

SUITE = "load"
LOAD_ENV = frozenset(("HARNESS_BASE_URL", "HARNESS_API_KEYS", "INFERENCE_API_KEY", "HARNESS_RATE_WINDOW",
                      "HARNESS_DEADLINE", "HARNESS_MAX_TASKS", "HARNESS_POLL_INTERVAL",
                      "HARNESS_ARRIVAL_RATE", "HARNESS_LOAD_DIR", "HARNESS_THRESHOLDS",
                      "HARNESS_ALLOW_HOSTS"))
Progress = Callable[[str], None]


@dataclass
class LoadOptions:
    """`harness load` options (None: take the run's settings)."""

    scenarios: list[str] = field(default_factory=lambda: ["mixed"])
    users: int = 10
    spawn_rate: float = 10.0
    duration_s: float = 30.0
    arrival_rate: float | None = None  # iterations per second (open model)
    processes: int = 1  # processes on this machine that run users (1: no master/worker)
    thresholds: list[str] = field(default_factory=list)
    toml_thresholds: bool = True  # also read [thresholds] from harness.toml
    deadline_s: float | None = None
    max_tasks: int | None = None
    poll_interval_s: float | None = None
    allow_hosts: list[str] = field(default_factory=list)
    limit_groups: list[str] = field(default_factory=list)  # at/over-limit lanes; empty: every group
    master: bool = False  # wait for workers from other machines
    master_bind_host: str = "*"
    master_port: int = 5557
    expect_workers: int = 1  # with master: workers from other machines to wait for
    worker_wait_s: float = 120.0
    heartbeat_bound_s: float | None = 15.0


    @classmethod
    def from_namespace(cls, args: argparse.Namespace) -> LoadOptions:
        """Fill from the arguments `add_load_arguments` defines (None/missing: the default)."""
        base = cls()
        given = {name: getattr(args, name, None) for name in (
            "users", "spawn_rate", "duration_s", "arrival_rate", "processes", "master",
            "master_bind_host", "master_port", "expect_workers")}
        options = replace(base, **{k: v for k, v in given.items() if v is not None})
        scenarios = getattr(args, "scenarios", None)
        thresholds = getattr(args, "thresholds", None)
        return replace(options, scenarios=list(scenarios) if scenarios else base.scenarios,
                       thresholds=list(thresholds or []),
                       limit_groups=list(dict.fromkeys(getattr(args, "limit_groups", None) or [])))


def duration_arg(text: str) -> float:
    """argparse type: `60`, `60s`, `2m`, `1h30m` -> seconds."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def rate_arg(text: str) -> float:
    """argparse type: `5`, `5/s`, `300/m` -> per second."""
    try:
        return parse_rate(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def threshold_arg(text: str) -> str:
    """argparse type: a threshold expression, checked now (a typo is a usage error, exit 2)."""
    try:
        parse_threshold(text)
    except ThresholdError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def scenario_arg(text: str) -> str:
    try:
        return resolve(text).name
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_load_arguments(parser: argparse.ArgumentParser) -> None:
    """The `harness load` options (also usable by `harness check`)."""
    group = parser.add_argument_group("load options")
    group.add_argument("--scenario", action="append", dest="scenarios", type=scenario_arg,
                       metavar="NAME", help=f"repeatable: {', '.join(SCENARIOS)} (default mixed); "
                       "phases run one after the other, over_limit last")
    group.add_argument("--users", type=positive_int, metavar="N",
                       help="concurrent users per phase (default 10; the pool in the open model)")
    group.add_argument("--spawn-rate", type=positive_float, dest="spawn_rate", metavar="R",
                       help="users started per second (default 10)")
    group.add_argument("--duration", type=duration_arg, dest="duration_s", metavar="60s",
                       help="length of each phase (default 30s)")
    group.add_argument("--arrival-rate", type=rate_arg, dest="arrival_rate", metavar="R/s",
                       help="open model: iterations started per second whatever the latency; "
                       "latencies count from the intended start; late iterations are dropped "
                       "and counted")
    group.add_argument("--processes", type=positive_int, metavar="N",
                       help="processes on this machine: 1 (default) runs users in one process; "
                       "N > 1 runs a Locust master and N-1 local workers")
    group.add_argument("--threshold", action="append", dest="thresholds", type=threshold_arg,
                       metavar="EXPR", help='repeatable SLO gate, e.g. "get_task.p95<200ms", '
                       '"errors<0.1%%", "run.rps>=1.5" (also [thresholds] in harness.toml)')
    group.add_argument("--limit-group", action="append", dest="limit_groups", metavar="GROUP",
                       choices=["run", "get", "upload"],
                       help="repeatable: the rate-limit groups at_limit and over_limit drive (default "
                       "all three; leave out run on a real target: every run slot is a billable task)")
    group.add_argument("--master", action="store_true", default=None,
                       help="also wait for workers from other machines (--expect-workers)")
    group.add_argument("--expect-workers", type=positive_int, dest="expect_workers", metavar="N",
                       help="with --master: workers from other machines to wait for (default 1)")
    group.add_argument("--master-bind", dest="master_bind_host", metavar="HOST",
                       help="with --master: interface to listen on (default all)")
    group.add_argument("--master-port", type=positive_int, dest="master_port", metavar="P",
                       help="with --master / --worker: the master's port (default 5557)")
    group.add_argument("--worker", action="store_true",
                       help="run Locust workers for a master elsewhere (--master-host); the "
                       "master sends the target and the phases, keys come from this machine")
    group.add_argument("--master-host", dest="master_host", metavar="H",
                       help="with --worker: the master's host")


def _relay(stream: Any, progress: Progress, lines: list[str]) -> None:
    for raw in stream:
        line = raw.rstrip("\n")
        lines.append(line)
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if not isinstance(event, dict):
            continue
        kind = event.get("event")
        if kind == "phase":
            progress(f"load {event.get('scenario')}: {event.get('users')} users for "
                     f"{event.get('duration_s')} s in {event.get('workers')} process(es)")
        elif kind == "phase_done":
            progress(f"load {event.get('scenario')}: done, {event.get('requests')} requests, "
                     f"{event.get('tasks_created')} tasks")
        elif kind == "master":
            progress(f"load master listening on {event.get('host')}:{event.get('port')}")
        elif kind in ("note", "error"):
            progress(f"load: {event.get('message')}")


def _append_history(phase_dirs: list[Path], target: Path) -> int:
    count = 0
    with target.open("a", encoding="utf-8") as out:
        for phase_dir in phase_dirs:
            path = phase_dir / "observations.jsonl"
            if not path.exists():
                continue
            with path.open(encoding="utf-8") as handle:
                for line in handle:
                    out.write(line)
                    count += 1
    return count


def run_load(base_url: str, keys: list[str], lifecycle: Lifecycle, limits: Limits, run_dir: Path,
             options: LoadOptions | None = None, progress: Progress | None = None) -> SuiteResult:
    """Run the scenarios against `base_url`; every key is used (round-robin over users)."""
    options = options or LoadOptions()
    note = progress or (lambda _msg: None)
    started = time.monotonic()

    def failed(message: str, status: str = "error") -> SuiteResult:
        return SuiteResult(name=SUITE, status=status, checks=list(CHECKS),  # type: ignore[arg-type]
                           error=message, duration_s=round(time.monotonic() - started, 3))

    try:
        parse_thresholds(options.thresholds)
        phases = phase_order(options.scenarios)
    except (ThresholdError, ValueError) as exc:
        return failed(str(exc))
    if not keys:
        return failed("no API key")
    probe = LoadConfig(allow_hosts=options.allow_hosts)
    reason = probe.guard_error(base_url)
    if reason is not None and not is_loopback(base_url):
        return failed(reason)
    max_tasks = 500 if options.max_tasks is None else options.max_tasks
    if max_tasks < 1:
        return SuiteResult(name=SUITE, status="skipped", error="task budget (--max-tasks) spent")
    load_dir = run_dir / "load"
    load_dir.mkdir(parents=True, exist_ok=True)
    group_limits = {name: group.limit for name, group in limits.groups.items()}
    unknown = [g for g in options.limit_groups if g not in group_limits]
    if unknown:
        return failed(f"unknown rate-limit group {unknown[0]!r} (known: {', '.join(group_limits)})")
    phase_dirs: list[Path] = []
    configs = []
    for scenario in phases:
        phase_dir = load_dir / scenario.name
        phase_dirs.append(phase_dir)
        configs.append(json.loads(LoadConfig(
            scenario=scenario.name, base_url=base_url, window_s=limits.window_seconds,
            limits=group_limits, deadline_s=options.deadline_s or 60.0, max_tasks=max_tasks,
            poll_interval_s=options.poll_interval_s, arrival_rate=options.arrival_rate,
            out_dir=str(phase_dir), library=True, allow_hosts=options.allow_hosts,
            limit_groups=options.limit_groups, run_token=secrets.token_hex(4)).to_json()))
    deadline = options.deadline_s or 60.0
    drain = deadline + 5.0
    plan = {
        "base_url": base_url, "phases": configs, "users": options.users,
        "spawn_rate": options.spawn_rate, "duration_s": options.duration_s,
        "processes": max(1, options.processes), "master": options.master,
        "bind_host": options.master_bind_host if options.master else "127.0.0.1",
        "bind_port": options.master_port if options.master else 0,
        "expect_workers": options.expect_workers if options.master else 0,
        "worker_wait_s": options.worker_wait_s, "drain_s": drain,
        "result": str(load_dir / "result.json"), "log": str(load_dir / "locust.log"),
    }
    if options.master and is_loopback(base_url):
        note(f"load: warning: workers on other machines cannot reach the loopback target {base_url}")
    plan_path = load_dir / "run-plan.json"
    plan_path.write_text(json.dumps(plan, indent=1))
    # The plan decides; stray load settings of the caller's shell must not (keys replaced below).
    env = {k: v for k, v in os.environ.items() if k not in LOAD_ENV}
    env["HARNESS_API_KEYS"] = ",".join(keys)  # keys travel in the environment only
    longest = options.duration_s + (2 * limits.window_seconds if any(
        s.kind != "flow" for s in phases) else 0.0)
    budget_s = (len(phases) * (longest + drain + 20.0) + 30.0
                + (options.worker_wait_s if options.master else 0.0))
    lines: list[str] = []
    process = subprocess.Popen([sys.executable, "-m", "harness.suites.load.master", str(plan_path)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    relay = threading.Thread(target=_relay, args=(process.stdout, note, lines), daemon=True)
    relay.start()
    try:
        code = process.wait(timeout=budget_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        code = -1
    relay.join(timeout=5)
    (load_dir / "master.out").write_text("\n".join(lines) + "\n")
    if code != 0 and not any((d / "summary.json").exists() for d in phase_dirs):
        why = "timed out" if code == -1 else f"exited with {code}"
        tail = " | ".join(lines[-5:])
        return failed(f"the load process {why}: {tail}")
    analysis = analyse_phases(phase_dirs, options.thresholds, lifecycle,
                              InvariantOptions(heartbeat_bound_s=options.heartbeat_bound_s))
    appended = _append_history(phase_dirs, run_dir / "observations.jsonl")
    metrics = {**analysis.metrics, "observations_appended": appended,
               "processes": max(1, options.processes), "users": options.users,
               "scenarios_run": [s.name for s in phases], "files": str(load_dir)}
    error = "; ".join(analysis.notes) or None
    if code != 0:
        error = "; ".join(filter(None, [f"the load process exited with {code}", error]))
    return SuiteResult(name=SUITE, status=analysis.status, checks=analysis.checks, metrics=metrics,
                       findings=analysis.findings, error=error,
                       duration_s=round(time.monotonic() - started, 3))


def suite_entry(ctx: Context) -> SuiteResult:
    """`harness load` / `harness check --suite load`: options from ctx.load_options, if any."""
    options: LoadOptions = getattr(ctx, "load_options", None) or LoadOptions()
    thresholds = list(options.thresholds)
    if options.toml_thresholds:
        try:
            thresholds += thresholds_from_toml(DEFAULT_TOML)
        except ThresholdError as exc:
            return SuiteResult(name=SUITE, status="error", error=str(exc))
    budget = ctx.tasks_left if options.max_tasks is None else min(options.max_tasks, ctx.tasks_left)
    options = replace(options, thresholds=thresholds, max_tasks=budget,
                      deadline_s=options.deadline_s or ctx.settings.deadline,
                      allow_hosts=sorted({*options.allow_hosts, *ctx.settings.allow_hosts}))
    return run_load(ctx.base_url, ctx.keys, ctx.lifecycle, ctx.limits, ctx.run_dir, options,
                    ctx.progress)


def run_worker(master_host: str, master_port: int, keys: list[str], processes: int = 1) -> int:
    """`harness load --worker --master-host H`: `processes` Locust workers on this machine."""
    if not keys:
        raise ValueError("a Locust worker needs at least one API key")
    env = {**os.environ, "HARNESS_API_KEYS": ",".join(keys)}
    children = [subprocess.Popen([sys.executable, "-m", "harness.suites.load.worker", "--master-host",
                                  master_host, "--master-port", str(master_port)], env=env)
                for _ in range(max(1, processes))]
    codes = [child.wait() for child in children]
    return max(codes)
