"""One run: prepare the target (or start the reference server), run suites, write the run folder."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from harness.contract import Lifecycle, Limits, load_lifecycle, load_limits
from harness.exit_codes import ExitCode
from harness.findings import Finding, RunResult, SuiteResult
from harness.history import compress_history
from harness.net.deadline import DeadlineExceeded, deadline_passed, set_deadline
from harness.net.hosts import set_file_hosts
from harness.net.preflight import PreflightError, preflight, preflight_apps
from harness.net.reference import ReferenceServerError, fresh_keys, reference_server
from harness.net.tls import TlsPolicy, set_policy
from harness.progress import meter
from harness.redaction import redact, set_secrets
from harness.report.results import new_run_id, now_rfc3339, write_results
from harness.settings import DEFAULT_MAX_TASKS, NO_KEY, Settings, is_loopback
from harness.suites.base import Context, Progress, Suite
from harness.suites.registry import SUITES

SELF_STARTED_MAX_TASKS = 20_000
SELF_STARTED_WINDOW = 2.0
# How long a suite stopped by its deadline has for its threads to notice and end.
THREAD_GRACE_S = 5.0


class RunError(Exception):
    """The run cannot start; `code` is the exit code (2 config, 3 unreachable)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@contextmanager
def target(settings: Settings, faults: list[str], progress: Progress,
           app_suites: bool = True) -> Iterator[Settings]:
    """Yield settings pointing at a ready target: the given URL, or a fresh reference server.

    `app_suites`: some suite will run apps, so each mapped app is tried once first.
    """
    if settings.base_url is not None:
        if faults:
            raise RunError(ExitCode.USAGE, "--fault applies only to a self-started reference server "
                           "(drop --base-url)")
        if not settings.api_keys:
            raise RunError(ExitCode.USAGE, NO_KEY)
        if not is_loopback(settings.base_url):
            host = urlsplit(settings.base_url).hostname or ""
            if host not in settings.allow_hosts:
                raise RunError(ExitCode.USAGE, f"{host} is not loopback and not allowed; suites create "
                               f"billable tasks: add --allow-host {host} to accept")
        budget = settings.max_tasks or DEFAULT_MAX_TASKS
        preflight_runs = 0
        try:
            preflight(settings.base_url, settings.api_keys)
            if app_suites:
                progress("preflight: running each mapped app once")
                preflight_runs = preflight_apps(settings.base_url, settings.api_keys[0], settings.profile,
                                                budget)
                budget -= preflight_runs
        except PreflightError as exc:
            raise RunError(ExitCode.UNREACHABLE if exc.unreachable else ExitCode.USAGE, str(exc)) from exc
        yield settings.model_copy(update={"max_tasks": budget, "preflight_runs": preflight_runs})
        return
    keys = fresh_keys(2)
    window = settings.rate_window or SELF_STARTED_WINDOW
    progress(f"starting the reference server (rate window {window:g} s, speed {settings.speed:g}"
             + (f", faults {', '.join(faults)})" if faults else ")"))
    try:
        server = reference_server(keys, rate_window=window, speed=settings.speed, faults=faults,
                                  extra_args=["--heartbeat", "1"])
        with server as running:
            yield settings.model_copy(update={"base_url": running.url, "api_keys": keys,
                                              "rate_window": window,
                                              "max_tasks": settings.max_tasks or SELF_STARTED_MAX_TASKS})
    except ReferenceServerError as exc:
        raise RunError(ExitCode.UNREACHABLE, str(exc)) from exc


class _InterruptFlag:
    """Remembers a SIGINT while the suites run (then raises KeyboardInterrupt as Python does)."""

    def __init__(self) -> None:
        self.seen = False
        self._previous: Any = None
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)

    def _on_sigint(self, signum: int, frame: Any) -> None:
        self.seen = True
        raise KeyboardInterrupt

    def restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _run_suite(suite: Suite, ctx: Context, options: Any, progress: Progress,
               limit: tuple[float, str, float]) -> SuiteResult:
    """One suite within its deadline (`limit`: monotonic end, "run" or "suite", seconds), its crash
    or its deadline turned into a result; the budget left is updated."""
    started, wall = time.monotonic(), time.time()
    progress(f"suite {suite.name}: started")
    meter().start_suite(suite.name)
    threads_before = threading.active_count()
    set_deadline(*limit)
    try:
        outcome = suite.run(ctx, options)
    except DeadlineExceeded as exc:
        outcome = _deadline_result(suite, exc, time.monotonic() - started)
        # The suite's own threads stop at their next request (the deadline stays passed until
        # then): none of them may run on into the next suite.
        end = time.monotonic() + THREAD_GRACE_S
        while threading.active_count() > threads_before and time.monotonic() < end:
            time.sleep(0.02)
    except Exception as exc:  # a suite crash is a result, not a traceback for the user
        outcome = SuiteResult(name=suite.name, status="error", error=f"{type(exc).__name__}: {exc}",
                              duration_s=round(time.monotonic() - started, 3))
    finally:
        set_deadline(None)
        meter().start_suite(None)
    if outcome.status == "passed" and not suite.judged_something(outcome):
        outcome.status = "error"
        outcome.error = ("nothing was judged (no task created, no answer seen): a run that "
                         "tested nothing is not a pass")
    if outcome.status in ("passed", "failed") and suite.deadline_check not in outcome.checks:
        outcome.checks.append(suite.deadline_check)  # it ended in time (or the finding says not)
    outcome.skipped = _skipped((*suite.all_checks(), suite.deadline_check), outcome)
    outcome.started, outcome.ended = round(wall, 3), round(time.time(), 3)
    ctx.tasks_left -= int(outcome.metrics.get("tasks_created", 0))
    progress(f"suite {suite.name}: {outcome.status}, {len(outcome.findings)} finding(s)")
    return outcome


def _quiet_threads(progress: Progress) -> Callable[[threading.ExceptHookArgs], None]:
    """A thread's uncaught exception as one redacted line, never a traceback; a thread stopped
    by the deadline (or failing after it, its clients closed) says nothing."""
    def hook(args: threading.ExceptHookArgs) -> None:
        if isinstance(args.exc_value, DeadlineExceeded) or deadline_passed():
            return
        name = args.thread.name if args.thread is not None else "a thread"
        progress(f"warning: {name} stopped: {args.exc_type.__name__}: {args.exc_value}")
    return hook


def _deadline_result(suite: Suite, exc: DeadlineExceeded, elapsed: float) -> SuiteResult:
    """The finding of a suite stopped by a deadline, with what it had seen until then."""
    seen = meter().snapshot()
    return SuiteResult(
        name=suite.name, status="failed", duration_s=round(elapsed, 3),
        checks=[suite.deadline_check],
        metrics={"requests": seen.requests, "errors": seen.errors},
        findings=[Finding(
            check=suite.deadline_check, severity="error", suite=suite.name,
            message=f"the {exc.what} deadline of {exc.limit_s:g} s stopped the suite after {elapsed:.1f} s "
                    f"({seen.requests} requests seen, {seen.errors} errors): the target answered too "
                    "slowly for the suite to finish",
            evidence={"deadline": exc.what, "limit_s": exc.limit_s, "elapsed_s": round(elapsed, 3),
                      "requests": seen.requests, "errors": seen.errors,
                      "history": "observations.jsonl.gz holds every observation recorded until then"},
            repro=f"harness {suite.name} --{exc.what}-deadline {exc.limit_s:g}")])


def _redacting(progress: Progress) -> Progress:
    """`progress` with every message passed through the redaction layer first."""
    def say(message: str) -> None:
        progress(redact(message))
    return say


def _skipped(every: tuple[str, ...], outcome: SuiteResult) -> dict[str, str]:
    """Every check of the suite that did not run, with the suite's reason or a general one."""
    if outcome.status == "skipped":
        default = f"the suite was skipped: {outcome.error or 'nothing to judge'}"
    elif outcome.status == "error":
        default = f"the suite did not finish: {outcome.error or 'error'}"
    else:
        default = "not run in this configuration"
    ran = set(outcome.checks) | {f.check for f in outcome.findings}
    return {check: outcome.skipped.get(check, default) for check in every if check not in ran}


def execute(settings: Settings, suites: list[str], progress: Progress,
            options: Mapping[str, Any] | None = None) -> tuple[RunResult, Path]:
    """Run `suites` in registry order against the target; write the run folder; return it.

    `options` maps a suite's name to what its `Suite.options` made of the settings (default: the
    suite's own reading of the settings).
    """
    faults, lifecycle_path = settings.faults, settings.lifecycle
    unknown = [name for name in suites if name not in SUITES]
    if unknown:
        raise RunError(ExitCode.USAGE, f"unknown suite {unknown[0]!r} (known: {', '.join(SUITES)})")
    options = options or {}
    set_secrets(settings.api_keys)
    progress = _redacting(progress)
    set_policy(TlsPolicy(settings.ca_bundle, settings.insecure))
    if settings.insecure:
        progress("warning: --insecure: the target's TLS certificate is not verified")
    lifecycle = load_lifecycle(lifecycle_path) if lifecycle_path else load_lifecycle()
    limits = load_limits()
    run_end = time.monotonic() + settings.run_deadline
    set_deadline(run_end, "run", settings.run_deadline)  # the preflight counts too
    previous_hook = threading.excepthook
    threading.excepthook = _quiet_threads(progress)
    try:
        with target(settings, faults, progress,
                    app_suites=bool(set(suites) - {"ratelimit"})) as ready:
            return _run_suites(settings, ready, suites, progress, options, lifecycle, limits, run_end)
    except DeadlineExceeded as exc:
        raise RunError(ExitCode.UNREACHABLE, f"{exc} before any suite ran (preflight): the target "
                       "answers too slowly") from None
    finally:
        set_deadline(None)
        threading.excepthook = previous_hook


def _run_suites(settings: Settings, ready: Settings, suites: list[str], progress: Progress,
                options: Mapping[str, Any], lifecycle: Lifecycle, limits: Limits,
                run_end: float) -> tuple[RunResult, Path]:
    """The suites of a run against a ready target; the run folder written and rendered."""
    seed, faults = settings.seed, settings.faults
    assert ready.base_url is not None
    set_secrets(ready.api_keys)  # a self-started server's keys are new
    set_file_hosts(ready.allow_file_hosts)
    if ready.rate_window is not None:
        limits = limits.model_copy(update={"window_seconds": ready.rate_window})
    run_id = new_run_id()
    run_dir = ready.out_dir / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    result = RunResult(run_id=run_id, target=ready.base_url, started_at=now_rfc3339(),
                       settings={**ready.public(), "faults": faults, "suites": suites,
                                 "lifecycle": lifecycle.name})
    ctx = Context(ready.base_url, ready.api_keys, lifecycle, limits, run_dir, ready, progress,
                  ready.max_tasks or DEFAULT_MAX_TASKS, seed)
    progress(f"run {run_id} against {ready.base_url}")
    current: str | None = None
    interrupt = _InterruptFlag()
    try:
        for name, suite in SUITES.items():
            if name not in suites:
                continue
            if time.monotonic() >= run_end:
                result.suites.append(SuiteResult(name=name, status="skipped", error=(
                    f"the run deadline of {settings.run_deadline:g} s left no time for this suite")))
                continue
            current = name
            chosen = options[name] if name in options else suite.options(ready)
            suite_end = time.monotonic() + settings.suite_deadline
            limit = ((suite_end, "suite", settings.suite_deadline) if suite_end < run_end
                     else (run_end, "run", settings.run_deadline))
            result.suites.append(_run_suite(suite, ctx, chosen, progress, limit))
            current = None
    except KeyboardInterrupt:
        # Children got the same SIGINT; write and render what ran, then tell the CLI.
        result.interrupted = True
        if current is not None:
            result.suites.append(SuiteResult(name=current, status="error",
                                             error="interrupted by the user"))
        progress("interrupted; writing the run folder")
    finally:
        interrupt.restore()
    if interrupt.seen and not result.interrupted:
        # The same SIGINT stopped the reference server first, and the suite ended on its errors
        # before the main thread saw KeyboardInterrupt (or a library swallowed it): still Ctrl-C.
        result.interrupted = True
        progress("interrupted; writing the run folder")
    result.finished_at = None if result.interrupted else now_rfc3339()
    compress_history(run_dir)
    write_results(result, run_dir, ready.api_keys)
    progress("rendering the report")
    from harness.report.render import render_run  # matplotlib: import only when needed

    render_run(run_dir, ready.api_keys, lifecycle)
    return result, run_dir
