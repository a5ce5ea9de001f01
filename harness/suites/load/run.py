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

import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.checks.lifecycle import InvariantOptions
from harness.checks.thresholds import (
    ThresholdError,
    parse_thresholds,
)
from harness.contract import Lifecycle, Limits
from harness.findings import SuiteResult
from harness.history import HISTORY_FILE
from harness.net.deadline import capped, check_deadline
from harness.net.hosts import file_policy
from harness.net.tls import policy
from harness.progress import meter
from harness.redaction import redact
from harness.settings import DEFAULT_MAX_TASKS, ENV_NAMES, Settings, is_loopback, settings_env
from harness.suites.load.analysis import CHECKS, analyse_phases
from harness.suites.load.config import LoadConfig, reference_apps
from harness.suites.load.options import LoadOptions
from harness.suites.load.scenarios import phase_order

SUITE = "load"
Progress = Callable[[str], None]


def _absorb(event: dict[str, Any]) -> None:
    """A child's tick: its counters become the live figures (whatever type the JSON gave)."""
    def number(name: str) -> float | None:
        value = event.get(name)
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

    requests, errors = number("requests"), number("errors")
    meter().absorb(int(requests or 0), int(errors or 0), number("rps"), number("p95_ms"))


def _relay(stream: Any, progress: Progress, lines: list[str]) -> None:
    for raw in stream:
        line = raw.rstrip("\n")
        lines.append(line)
        try:
            event = json.loads(line)
        except ValueError:
            progress(f"debug: load: {line}")
            continue
        if not isinstance(event, dict):
            continue
        kind = event.get("event")
        if kind == "tick":
            _absorb(event)
        elif kind == "phase":
            meter().set_phase(str(event.get("scenario")))
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
    """Move each phase's history to the end of the run's (the phase copy goes: stored once)."""
    count = 0
    with target.open("a", encoding="utf-8") as out:
        for phase_dir in phase_dirs:
            path = phase_dir / HISTORY_FILE
            if not path.exists():
                continue
            with path.open(encoding="utf-8") as handle:
                for line in handle:
                    out.write(line)
                    count += 1
            path.unlink()
    return count


def _redact_files(folder: Path) -> None:
    """Pass every file Locust and the children wrote (CSVs, summaries, logs) through the redaction
    layer: a key the target echoed into an error message must not reach the run folder."""
    for path in folder.rglob("*"):
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
        clean = redact(text)
        if clean != text:
            path.write_text(clean, encoding="utf-8", errors="surrogateescape")


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
    max_tasks = DEFAULT_MAX_TASKS if options.max_tasks is None else options.max_tasks
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
    tls = policy()
    for scenario in phases:
        phase_dir = load_dir / scenario.name
        phase_dirs.append(phase_dir)
        configs.append(json.loads(LoadConfig(
            scenario=scenario.name, base_url=base_url, window_s=limits.window_seconds,
            limits=group_limits, deadline_s=options.deadline_s or 60.0, max_tasks=max_tasks,
            poll_interval_s=options.poll_interval_s, arrival_rate=options.arrival_rate,
            out_dir=str(phase_dir), library=True, allow_hosts=options.allow_hosts,
            limit_groups=options.limit_groups, run_token=secrets.token_hex(4),
            apps=options.apps if options.apps is not None else reference_apps(),
            apps_builtin=options.apps_builtin, ca_bundle=str(tls.ca_bundle) if tls.ca_bundle else None,
            insecure=tls.insecure, file_hosts=sorted(file_policy(base_url).file_hosts)).to_json()))
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
    # The plan decides; stray settings of the caller's shell must not (keys replaced below).
    env = {k: v for k, v in os.environ.items() if k not in ENV_NAMES}
    env["HARNESS_API_KEYS"] = ",".join(keys)  # keys travel in the environment only
    # The children read no settings file: a ./harness.toml the run did not use must not count.
    env["HARNESS_CONFIG"] = str(options.config or os.devnull)
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
        try:
            code = process.wait(timeout=capped(budget_s))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            code = -1
            check_deadline()  # the run's or the suite's deadline cut it: that is the finding
        relay.join(timeout=5)
    finally:
        # Ctrl-C included: what the children wrote is redacted before the run folder is rendered.
        (load_dir / "master.out").write_text(redact("\n".join(lines)) + "\n")
        _redact_files(load_dir)
    if code != 0 and not any((d / "summary.json").exists() for d in phase_dirs):
        why = "timed out" if code == -1 else f"exited with {code}"
        tail = " | ".join(lines[-5:])
        return failed(f"the load process {why}: {tail}")
    analysis = analyse_phases(phase_dirs, options.thresholds, lifecycle,
                              InvariantOptions(heartbeat_bound_s=options.heartbeat_bound_s))
    appended = _append_history(phase_dirs, run_dir / HISTORY_FILE)
    metrics = {**analysis.metrics, "observations_appended": appended,
               "processes": max(1, options.processes), "users": options.users,
               "scenarios_run": [s.name for s in phases], "files": str(load_dir)}
    error = "; ".join(analysis.notes) or None
    status = analysis.status
    if code != 0:
        error = "; ".join(filter(None, [f"the load process exited with {code}", error]))
        status = "error"  # the suite could not finish what it was asked: never a pass
    return SuiteResult(name=SUITE, status=status, checks=analysis.checks, skipped=analysis.skipped,
                       metrics=metrics,
                       findings=analysis.findings, error=error,
                       duration_s=round(time.monotonic() - started, 3))


def run_worker(master_host: str, master_port: int, keys: list[str], processes: int = 1,
               settings: Settings | None = None) -> int:
    """`harness load --worker --master-host H`: `processes` Locust workers on this machine.

    The workers judge the master's target by this machine's own settings (allowed hosts, TLS),
    never by what the master sends.
    """
    if not keys:
        raise ValueError("a Locust worker needs at least one API key")
    own = settings or Settings()
    # This machine's settings, as the one model reads them back in each worker process.
    env = {**{k: v for k, v in os.environ.items() if k not in ENV_NAMES},
           **settings_env(own.model_copy(update={"api_keys": keys}),
                          ("api_keys", "allow_hosts", "allow_file_hosts", "insecure", "ca_bundle",
                           "config"))}
    children = [subprocess.Popen([sys.executable, "-m", "harness.suites.load.worker", "--master-host",
                                  master_host, "--master-port", str(master_port)], env=env)
                for _ in range(max(1, processes))]
    codes = [child.wait() for child in children]
    return max(codes)
