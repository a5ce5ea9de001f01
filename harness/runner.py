"""One run: prepare the target (or start the reference server), run suites, write the run folder."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from harness.contract import Lifecycle, Limits, load_lifecycle, load_limits
from harness.findings import RunResult, SuiteResult
from harness.net.reference import ReferenceServerError, fresh_keys, reference_server
from harness.report.results import new_run_id, now_rfc3339, write_results
from harness.settings import Settings, is_loopback
from harness.suites.contract import run as conformance
from harness.suites.contract.run import ConformanceOptions
from harness.suites.lifecycle.run import LifecycleOptions, run_lifecycle
from harness.suites.load import run as load
from harness.suites.load.run import LoadOptions
from harness.suites.ratelimit import run as ratelimit
from harness.suites.ratelimit.run import RateLimitOptions
from harness.suites.smoke.run import SmokeOptions, run_smoke

EXIT_USAGE, EXIT_UNREACHABLE = 2, 3
DEFAULT_MAX_TASKS = 500
SELF_STARTED_MAX_TASKS = 20_000
SELF_STARTED_WINDOW = 2.0
Progress = Callable[[str], None]


class RunError(Exception):
    """The run cannot start; `code` is the exit code (2 config, 3 unreachable)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Context:
    """What every suite gets: the target, the contract, the run folder and the task budget."""

    base_url: str
    keys: list[str]
    lifecycle: Lifecycle
    limits: Limits
    run_dir: Path
    settings: Settings
    progress: Progress
    tasks_left: int
    lifecycle_options: LifecycleOptions = field(default_factory=LifecycleOptions)
    ratelimit_options: RateLimitOptions = field(default_factory=RateLimitOptions)
    conformance_options: ConformanceOptions = field(default_factory=ConformanceOptions)
    load_options: LoadOptions = field(default_factory=LoadOptions)


def _smoke(ctx: Context) -> SuiteResult:
    return run_smoke(ctx.base_url, ctx.keys, ctx.lifecycle, ctx.limits,
                     SmokeOptions(deadline_s=ctx.settings.deadline), progress=ctx.progress)


def _lifecycle(ctx: Context) -> SuiteResult:
    options = ctx.lifecycle_options
    tasks = min(options.tasks, max(0, ctx.tasks_left - 2))
    if tasks < 1:
        return SuiteResult(name="lifecycle", status="skipped", error="task budget (--max-tasks) spent")
    options = LifecycleOptions(**{**options.__dict__, "tasks": tasks,
                                  "deadline_s": ctx.settings.deadline})
    return run_lifecycle(ctx.base_url, ctx.keys, ctx.lifecycle, ctx.limits,
                         ctx.run_dir / "observations.jsonl", options, progress=ctx.progress)


# In run order: the rate-limit suite spends whole windows of budget, so it goes last.
SUITES: dict[str, Callable[[Context], SuiteResult]] = {
    "contract": conformance.suite_entry,
    "smoke": _smoke,
    "lifecycle": _lifecycle,
    "load": load.suite_entry,
    "ratelimit": ratelimit.suite_entry,
}


@contextmanager
def target(settings: Settings, faults: list[str], progress: Progress) -> Iterator[Settings]:
    """Yield settings pointing at a ready target: the given URL, or a fresh reference server."""
    if settings.base_url is not None:
        if faults:
            raise RunError(EXIT_USAGE, "--fault applies only to a self-started reference server "
                           "(drop --base-url)")
        if not settings.api_keys:
            raise RunError(EXIT_USAGE, "no API key: pass --api-key, or set HARNESS_API_KEYS or "
                           "INFERENCE_API_KEY")
        if not is_loopback(settings.base_url):
            host = urlsplit(settings.base_url).hostname or ""
            if host not in settings.allow_hosts:
                raise RunError(EXIT_USAGE, f"{host} is not loopback and not allowed; suites create "
                               f"billable tasks: add --allow-host {host} to accept")
        try:
            httpx.get(settings.base_url + "/", timeout=10.0)
        except httpx.HTTPError as exc:
            raise RunError(EXIT_UNREACHABLE, f"target {settings.base_url} unreachable: "
                           f"{type(exc).__name__}: {exc}") from exc
        yield settings.model_copy(update={"max_tasks": settings.max_tasks or DEFAULT_MAX_TASKS})
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
        raise RunError(EXIT_UNREACHABLE, str(exc)) from exc


def execute(settings: Settings, suites: list[str], faults: list[str], progress: Progress,
            lifecycle_path: Path | None = None,
            lifecycle_options: LifecycleOptions | None = None,
            ratelimit_options: RateLimitOptions | None = None,
            conformance_options: ConformanceOptions | None = None,
            load_options: LoadOptions | None = None) -> tuple[RunResult, Path]:
    """Run `suites` in order against the target; write results.json; return it and the folder."""
    lifecycle = load_lifecycle(lifecycle_path) if lifecycle_path else load_lifecycle()
    limits = load_limits()
    with target(settings, faults, progress) as ready:
        assert ready.base_url is not None
        if ready.rate_window is not None:
            limits = limits.model_copy(update={"window_seconds": ready.rate_window})
        run_id = new_run_id()
        run_dir = ready.out_dir / run_id
        run_dir.mkdir(parents=True, exist_ok=True)
        result = RunResult(run_id=run_id, target=ready.base_url, started_at=now_rfc3339(),
                           settings={**ready.public(), "faults": faults, "suites": suites,
                                     "lifecycle": lifecycle.name})
        ctx = Context(ready.base_url, ready.api_keys, lifecycle, limits, run_dir, ready, progress,
                      ready.max_tasks or DEFAULT_MAX_TASKS, lifecycle_options or LifecycleOptions(),
                      ratelimit_options or RateLimitOptions(),
                      conformance_options or ConformanceOptions(), load_options or LoadOptions())
        progress(f"run {run_id} against {ready.base_url}")
        for name in [n for n in SUITES if n in suites]:
            started = time.monotonic()
            progress(f"suite {name}: started")
            try:
                suite = SUITES[name](ctx)
            except Exception as exc:  # a suite crash is a result, not a traceback for the user
                suite = SuiteResult(name=name, status="error", error=f"{type(exc).__name__}: {exc}",
                                    duration_s=round(time.monotonic() - started, 3))
            ctx.tasks_left -= int(suite.metrics.get("tasks_created", 0))
            result.suites.append(suite)
            progress(f"suite {name}: {suite.status}, {len(suite.findings)} finding(s)")
        result.finished_at = now_rfc3339()
        write_results(result, run_dir, ready.api_keys)
        progress("rendering the report")
        from harness.report.render import render_run  # matplotlib: import only when needed

        render_run(run_dir, ready.api_keys, lifecycle)
    return result, run_dir
