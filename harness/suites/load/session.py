"""Per-process state of a load run, wired to Locust's events (local, master or worker).

Importing this module registers listeners on `locust.events`, so a locustfile that imports a
harness user gets the whole machinery under plain `locust -f` (web UI or headless, single
process or `--master`/`--worker`), and `harness.suites.load.master` gets the same by passing
`locust.events` to its Environment.

What happens in each role:
- every process running users records each request and stream event twice: as a Locust
  request event (Locust's stats and UI) and as an Observation line (the history), plus HDR
  latencies and counters (`PhaseMetrics`);
- a local runner writes its history to `<phase dir>/observations.w0.jsonl`;
- a worker ships its history lines to the master every second (custom message
  `harness_obs`) and its metrics when its users stop (`harness_done`), and answers
  `harness_drain` (finish the current iterations, start no new one) with `harness_drained`;
- the master writes each worker's lines to `observations.w<index>.jsonl`, merges the metrics,
  and at test stop merges the histories into `observations.jsonl` and writes `summary.json`.
Under plain `locust -f` the master (or local runner) then checks the phase (invariants,
thresholds, limit checks), logs the findings and sets the exit code; in library mode the
harness process does that (`harness.suites.load.run`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import secrets
import socket
import time
import weakref
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

import gevent  # type: ignore[import-untyped]
from locust import events
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner
from pydantic_core import from_json as _from_json

from harness.checks.envelope import data_of
from harness.contract import load_lifecycle
from harness.history import Observation, worker_history_file
from harness.redaction import redact, set_secrets
from harness.settings import ConfigError, api_keys_from_env, load_settings
from harness.suites.load.config import LoadConfig, default_load_dir
from harness.suites.load.facts import Digest, status_fields, task_fields
from harness.suites.load.metrics import PhaseMetrics
from harness.suites.load.open_model import Arrivals, SlotFeed
from harness.suites.load.pacing import BudgetPacer, Share, TaskBudget
from harness.suites.load.plan_auth import master_token, plan_refusal, sign

log = logging.getLogger("harness.load")
_SESSIONS: weakref.WeakKeyDictionary[Environment, LoadSession] = weakref.WeakKeyDictionary()
_decode = json.JSONDecoder().decode
FLUSH_EVERY_S = 1.0
DONE_WAIT_S = 20.0


_PLAIN_SCENARIO = ["locust"]


def set_scenario(name: str) -> None:
    """A locustfile names its scenario (it decides which checks apply, e.g. at_limit)."""
    _PLAIN_SCENARIO[0] = name


class Abort(Exception):
    """The current iteration stops early (the phase is draining or stopping)."""


def session_of(environment: Environment) -> LoadSession:
    session = _SESSIONS.get(environment)
    if session is None:
        session = _SESSIONS[environment] = LoadSession(environment)
    return session


def phase_dir_for(config: LoadConfig, test_number: int) -> Path:
    base = Path(config.out_dir or ".")
    return base if config.library or test_number <= 1 else base.with_name(f"{base.name}-{test_number}")


class LoadSession:
    """State of one process for the current phase (one Locust test run)."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        self.refused: str | None = None
        try:
            settings = load_settings({})
            self.config = LoadConfig.from_settings(settings, scenario=_PLAIN_SCENARIO[0])
            self.keys = list(settings.api_keys)
        except ConfigError as exc:  # refused in on_init, with exit code 2 (not a traceback)
            self.config = LoadConfig(scenario=_PLAIN_SCENARIO[0],
                                     out_dir=os.environ.get("HARNESS_LOAD_DIR") or str(default_load_dir()))
            self.keys = api_keys_from_env()
            self.refused = f"bad configuration: {exc}"
        self._own = self.config  # this machine's own settings: a master's plan cannot widen them
        self._token = master_token()  # signs the plans a master sends; a worker checks them
        set_secrets(self.keys)  # this process writes history lines and Locust's files
        self.lifecycle = load_lifecycle()
        self.terminal = frozenset(self.lifecycle.terminal)
        self.codes = {name: code for code, name in self.lifecycle.statuses.items()}
        self.token = secrets.token_hex(2)
        self.library = False
        self.tests = 0
        self.plain_findings = 0
        self._user_seq = 0
        self._greenlets: list[Any] = []
        self._digests: dict[str, dict[bytes, tuple[Any, Digest]]] = {}
        self._pacers: dict[tuple[int, str], BudgetPacer] = {}
        self._pacing: tuple[Any, ...] = ()
        self._reset_phase()

    # -- phase state ---------------------------------------------------------------------

    def _reset_phase(self) -> None:
        self.metrics = PhaseMetrics()
        self.lines: list[str] = []
        self.share = Share()
        self.budget = TaskBudget(self.config.max_tasks)
        self.arrivals: Arrivals | None = None
        self.feeds: dict[float, SlotFeed] = {}
        self.recent_tasks: dict[int, list[str]] = {}
        self.draining = False
        self.stopping = False
        self.busy = 0
        self._key_seq = 0
        self.started_mono = time.monotonic()
        self.phase_dir: Path | None = None
        self._file: IO[str] | None = None
        self._worker_files: dict[int, IO[str]] = {}
        self._worker_done: dict[str, dict[str, Any]] = {}
        self._drained: set[str] = set()
        self._expected: set[str] = set()
        self._done_sent = False
        self._finalized = False

    @property
    def runner(self) -> Any:
        return self.environment.runner

    @property
    def role(self) -> str:
        runner = self.environment.runner
        if isinstance(runner, MasterRunner):
            return "master"
        return "worker" if isinstance(runner, WorkerRunner) else "local"

    def set_plan(self, config: LoadConfig) -> None:
        """Library mode: the phase to run next (master or local runner, before start)."""
        self.config = config
        self.library = config.library

    def _apply_share(self) -> None:
        index = int(getattr(self.runner, "worker_index", 0) or 0)
        count = max(1, int(self.config.workers))
        share = Share(index if index >= 0 else 0, count)
        pacing = (share, self.config.window_s, tuple(sorted(self.config.limits.items())))
        if pacing != self._pacing:
            # Pacers outlive a phase: the next phase may start inside a window the last one used.
            self._pacing = pacing
            self._pacers = {}
        self.share = share
        self.budget = TaskBudget(self.config.max_tasks, self.share)
        if self.config.arrival_rate:
            self.arrivals = Arrivals(self.config.arrival_rate, self.share)

    # -- users ---------------------------------------------------------------------------

    def assign_key(self) -> int:
        if not self.keys:
            raise Abort("no API key in this process's environment (HARNESS_API_KEYS)")
        seq = self._key_seq
        self._key_seq += 1
        return (self.share.index + seq * self.share.count) % len(self.keys)

    def new_observer(self) -> str:
        seq = self._user_seq
        self._user_seq += 1
        return f"L{self.token}w{self.share.index}u{seq}"

    def pacer(self, key: int, group: str) -> BudgetPacer:
        pacer = self._pacers.get((key, group))
        if pacer is None:
            limit = self.config.limits.get(group, 1000)
            pacer = self._pacers[(key, group)] = BudgetPacer(limit, self.config.window_s, self.share)
        return pacer

    def feed(self, factor: float, groups: tuple[str, ...]) -> SlotFeed:
        feed = self.feeds.get(factor)
        if feed is None:
            chosen = self.config.limit_groups or list(self.config.limits)
            lanes = [(key, group) for key in range(len(self.keys)) for group in groups
                     if group in self.config.limits and group in chosen]
            feed = self.feeds[factor] = SlotFeed(lanes, self.config.limits, self.config.window_s,
                                                 factor, self.share)
            feed.start()
        return feed

    def sleep_until(self, epoch: float) -> None:
        """Sleep until an epoch time in short steps; raise Abort when the phase stops."""
        while True:
            if self.stopping:
                raise Abort("stopping")
            left = epoch - time.time()
            if left <= 0:
                return
            gevent.sleep(min(0.25, left))

    def parse(self, content: bytes) -> Any:
        """The `data` of an enveloped JSON body (or the bare body); None if not JSON.

        pydantic-core's parser first (about twice as fast on a task body); what it refuses goes
        to json, whose answer (or refusal) decides -- as harness.history does.
        """
        try:
            doc = _from_json(content, cache_strings="keys")
        except ValueError:
            try:
                doc = _decode(content.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                return None
        return data_of(doc)

    def digest(self, kind: str, content: bytes, memo: bool) -> tuple[Any, Digest]:
        """(data, its Observation fields) of a task or status body.

        Memoized on the exact body bytes: polls of an unchanged task return identical bytes,
        and parsing a task (2-3 KB of JSON) is the largest cost of a request on the load
        generator. Callers must not mutate the returned data.
        """
        cache = self._digests.get(kind) if memo else None
        if cache is not None:
            hit = cache.get(content)
            if hit is not None:
                return hit
        data = self.parse(content)
        result = (data, status_fields(data) if kind == "status" else task_fields(data))
        if memo:
            if cache is None:
                cache = self._digests[kind] = {}
            elif len(cache) >= 512:
                cache.clear()
            cache[content] = result
        return result

    def is_terminal(self, status: Any) -> bool:
        return type(status) is int and status in self.terminal

    def record(self, observation: Observation) -> None:
        """One history line, written by the history's one encoder."""
        self.lines.append(redact(observation.to_json()))

    def remember_task(self, key: int, task_id: str) -> None:
        recent = self.recent_tasks.setdefault(key, [])
        recent.append(task_id)
        if len(recent) > 64:
            del recent[:32]

    # -- draining (library mode: finish iterations before the runner stops users) --------

    def start_drain(self) -> None:
        self.draining = True
        if self.arrivals is not None:
            self.arrivals.stop()
        for feed in self.feeds.values():
            feed.stop()

    def wait_idle(self, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while self.busy > 0 and time.monotonic() < end:
            gevent.sleep(0.05)
        return self.busy == 0

    def drain(self, timeout: float) -> bool:
        """Master/local: let running iterations finish (up to `timeout`), start no new ones."""
        if self.role == "local":
            self.start_drain()
            return self.wait_idle(timeout)
        runner = self.runner
        self._drained = set()
        runner.send_message("harness_drain", {"run": self.config.run_token, "timeout": timeout})
        end = time.monotonic() + timeout + 2.0
        while time.monotonic() < end and not self._expected <= self._drained:
            gevent.sleep(0.05)
        return self._expected <= self._drained

    # -- history sinks ---------------------------------------------------------------------

    def _flusher(self) -> None:
        while True:
            gevent.sleep(FLUSH_EVERY_S)
            self.flush()

    def flush(self) -> None:
        if not self.lines:
            return
        lines, self.lines = self.lines, []
        if self.role == "worker":
            self.runner.send_message("harness_obs", {"run": self.config.run_token,
                                                     "lines": lines})
        elif self._file is not None:
            self._file.write("\n".join(lines) + "\n")
            self._file.flush()

    def _spawn(self, func: Any) -> None:
        self._greenlets.append(gevent.spawn(func))

    def _kill_greenlets(self) -> None:
        for greenlet in self._greenlets:
            greenlet.kill(block=False)
        self._greenlets = []

    # -- event handlers --------------------------------------------------------------------

    def on_init(self) -> None:
        # gevent's loop caches "now"; after a slow start-up (imports on a busy machine) a timer
        # set from the stale value fires early -- Locust's --run-time timer is set next.
        gevent.get_hub().loop.update_now()
        runner = self.runner
        if self.role == "master":
            runner.register_message("harness_obs", self._on_obs)
            runner.register_message("harness_done", self._on_done)
            runner.register_message("harness_drained", self._on_drained)
        elif self.role == "worker":
            runner.register_message("harness_drain", self._on_drain)
            runner.register_message("harness_flush", self._on_flush)
        if self.role != "worker" and not self.library:
            if self.environment.host is None and self.config.base_url:
                self.environment.host = self.config.base_url
            reason = self.refused or self.config.guard_error(self.environment.host)
            if reason is not None:
                self.refused = reason
                # Locust builds its users before the scheduled quit; they need a host to be built
                # and never send a byte (on_start waits for the quit). `.invalid` never resolves.
                self.environment.host = self.environment.host or "http://refused.invalid"
                log.error("harness: refusing to load: %s", reason)
                self.environment.process_exit_code = 2
                gevent.spawn_later(0.1, runner.quit)

    def on_test_start(self) -> None:
        self.tests += 1
        self._kill_greenlets()
        if self.role == "worker":
            options = self.environment.parsed_options
            plan = getattr(options, "harness_plan", None) if options is not None else None
            mac = getattr(options, "harness_plan_mac", None) if options is not None else None
            refusal = plan_refusal(str(plan) if plan else None, mac, self._token)
            if refusal is None and plan:
                self.config, refusal = LoadConfig.from_json(str(plan)).as_worker_of_this_machine(
                    self._own)
            if refusal is not None:
                self.refused = refusal
                # Only to answer the master under its run's token (it then ends at once and
                # reports the refusal); nothing of the refused plan is run.
                self.config = replace(self.config, run_token=_run_token_of(plan))
                log.error("harness: this worker refuses the master's plan: %s", refusal)
        self._reset_phase()
        if self.role == "master":
            self.config.workers = max(1, int(self.runner.worker_count))
            self._expected = {c.id for c in self.runner.clients.all}
            if not self.config.run_token:
                self.config.run_token = secrets.token_hex(4)
            options = self.environment.parsed_options
            if options is None:
                options = self.environment.parsed_options = argparse.Namespace()
            options.harness_plan = self.config.to_json()
            # The plan's HMAC with the shared token (never the token itself), for workers that check.
            options.harness_plan_mac = sign(options.harness_plan, self._token) if self._token else ""
        elif self.role == "local":
            self.config.workers = 1
            if not self.config.run_token:
                self.config.run_token = secrets.token_hex(4)
        self._apply_share()
        if self.role == "worker" and not self.refused:
            reason = self.refused or self.config.guard_error(self.environment.host)
            if reason is not None:
                self.refused = reason
                # Locust builds its users before the scheduled quit; they need a host to be built
                # and never send a byte (on_start waits for the quit). `.invalid` never resolves.
                self.environment.host = self.environment.host or "http://refused.invalid"
                log.error("harness: refusing to load: %s", reason)
        if self.role != "worker":
            self.phase_dir = phase_dir_for(self.config, self.tests)
            self.phase_dir.mkdir(parents=True, exist_ok=True)
            (self.phase_dir / "plan.json").write_text(self.config.to_json())
        if self.role == "local":
            assert self.phase_dir is not None
            self._file = (self.phase_dir / worker_history_file(0)).open("w", encoding="utf-8")
        if self.role != "master":
            self._spawn(self._flusher)

    def on_test_stopping(self) -> None:
        self.stopping = True
        self.start_drain()

    def on_test_stop(self) -> None:
        self.stopping = True
        self.start_drain()
        if self.role == "worker":
            self._send_done()
            return
        if self.role == "master":
            self.runner.send_message("harness_flush", {"run": self.config.run_token})
            end = time.monotonic() + DONE_WAIT_S
            while time.monotonic() < end and not self._expected <= set(self._worker_done):
                gevent.sleep(0.05)
        self.finalize()

    def on_quitting(self) -> None:
        if self.role != "worker" and not self.library and self.plain_findings:
            self.environment.process_exit_code = 1

    # -- worker side -----------------------------------------------------------------------

    def _on_drain(self, environment: Environment, msg: Any, **_: Any) -> None:
        data = msg.data or {}
        timeout = float(data.get("timeout", 30.0))
        self.start_drain()

        def report() -> None:
            self.wait_idle(timeout)
            self.runner.send_message("harness_drained", {"run": self.config.run_token})

        gevent.spawn(report)

    def _on_flush(self, environment: Environment, msg: Any, **_: Any) -> None:
        self._send_done()

    def _send_done(self) -> None:
        if self._done_sent:
            return
        self._done_sent = True
        self._kill_greenlets()
        self.flush()
        self.metrics.count("dropped_iterations", self.arrivals.dropped if self.arrivals else 0)
        self.metrics.count("iterations_scheduled", self.arrivals.started if self.arrivals else 0)
        with contextlib.suppress(Exception):
            self.runner._send_stats()  # Locust's own stats of the last seconds, before "done"
        self.runner.send_message("harness_done", {
            "run": self.config.run_token, "index": self.share.index, "host": socket.gethostname(),
            "clock": time.monotonic_ns() - time.time_ns(), "metrics": self.metrics.to_dict(),
            "refused": self.refused})

    # -- master side -----------------------------------------------------------------------

    def _worker_file(self, node_id: str) -> IO[str] | None:
        if self.phase_dir is None or self._finalized:
            return None
        index = int(self.runner.get_worker_index(node_id))
        handle = self._worker_files.get(index)
        if handle is None:
            handle = self._worker_files[index] = (
                self.phase_dir / worker_history_file(index)).open("a", encoding="utf-8")
        return handle

    def _on_obs(self, environment: Environment, msg: Any, **_: Any) -> None:
        data = msg.data or {}
        if data.get("run") != self.config.run_token:
            return
        self._expected.add(msg.node_id)
        handle = self._worker_file(msg.node_id)
        if handle is not None and data.get("lines"):
            handle.write("\n".join(data["lines"]) + "\n")

    def _on_done(self, environment: Environment, msg: Any, **_: Any) -> None:
        data = msg.data or {}
        if data.get("run") != self.config.run_token or self._finalized:
            return
        self._expected.add(msg.node_id)
        self._worker_done[msg.node_id] = data

    def _on_drained(self, environment: Environment, msg: Any, **_: Any) -> None:
        data = msg.data or {}
        if data.get("run") == self.config.run_token:
            self._drained.add(msg.node_id)

    # -- the end of a phase (master or local) ------------------------------------------------

    def finalize(self) -> None:
        if self._finalized or self.phase_dir is None:
            return
        self._kill_greenlets()
        self.flush()
        self._finalized = True
        phase_dir = self.phase_dir
        merged = PhaseMetrics()
        workers: list[dict[str, Any]] = []
        my_clock = time.monotonic_ns() - time.time_ns()
        shifts: dict[int, int] = {}
        if self.role == "local":
            if self._file is not None:
                self._file.close()
                self._file = None
            self.metrics.count("dropped_iterations", self.arrivals.dropped if self.arrivals else 0)
            self.metrics.count("iterations_scheduled", self.arrivals.started if self.arrivals else 0)
            merged.merge(self.metrics)
            workers.append({"index": 0, "host": socket.gethostname(), "done": True})
        else:
            for handle in self._worker_files.values():
                handle.close()
            self._worker_files = {}
            for node_id, done in sorted(self._worker_done.items(), key=lambda kv: kv[1].get("index", 0)):
                merged.merge(PhaseMetrics.from_dict(done.get("metrics", {})))
                index = int(self.runner.get_worker_index(node_id))
                clock = int(done.get("clock", my_clock))
                if abs(clock - my_clock) > 1_000_000_000:  # another machine: rebase its monotonic clock
                    shifts[index] = my_clock - clock
                workers.append({"index": index, "host": done.get("host"), "done": True,
                                "refused": done.get("refused")})
                if done.get("refused"):
                    log.warning("harness: worker %s refused the plan: %s", node_id, done["refused"])
            missing = sorted(self._expected - set(self._worker_done))
            for node_id in missing:
                workers.append({"index": int(self.runner.get_worker_index(node_id)), "done": False})
                log.warning("harness: worker %s sent no final report; its metrics are missing",
                            node_id)
        from harness.history.merge import merge_histories  # no gevent work inside

        observations = merge_histories(phase_dir, shifts)
        stats = self.environment.stats.total
        summary = {
            "scenario": self.config.scenario,
            "config": json.loads(self.config.to_json()),
            "role": self.role,
            "duration_s": round(time.monotonic() - self.started_mono, 3),
            "workers": workers,
            "observations": observations,
            "locust": {"requests": stats.num_requests, "failures": stats.num_failures,
                       "median_ms": stats.median_response_time,
                       "avg_ms": round(stats.avg_response_time, 3),
                       "rps": round(stats.total_rps, 3)},
            "metrics": merged.to_dict(),
        }
        (phase_dir / "summary.json").write_text(json.dumps(summary, indent=1))
        if not self.library:
            self._check_plain(phase_dir)

    def _check_plain(self, phase_dir: Path) -> None:
        """Plain `locust -f`: check this phase now and log what was found."""
        from harness.suites.load.analysis import analyse_phases

        try:
            result = analyse_phases([phase_dir], self.config.thresholds, self.lifecycle)
        except Exception as exc:  # a broken check must not hide Locust's own results
            log.error("harness: checking the load run failed: %s: %s", type(exc).__name__, exc)
            return
        (phase_dir / "findings.json").write_text(json.dumps(
            [f.model_dump(mode="json") for f in result.findings], indent=1))
        (phase_dir / "metrics.json").write_text(json.dumps(result.metrics, indent=1))
        self.plain_findings = sum(1 for f in result.findings if f.severity == "error")
        log.info("harness: %s -> %d finding(s); details in %s", result.status,
                 len(result.findings), phase_dir)
        for finding in result.findings[:20]:
            log.warning("harness: %s %s", finding.check, finding.message)


def _run_token_of(plan: object) -> str:
    """The run token of a plan's JSON text ("" if there is none to read)."""
    try:
        token = json.loads(str(plan)).get("run_token", "") if plan else ""
    except (ValueError, AttributeError):
        return ""
    return token if isinstance(token, str) else ""


# -- listeners on Locust's global events ---------------------------------------------------

def _on_init(environment: Environment, **_: Any) -> None:
    session_of(environment).on_init()


def _on_test_start(environment: Environment, **_: Any) -> None:
    session_of(environment).on_test_start()


def _on_test_stopping(environment: Environment, **_: Any) -> None:
    session_of(environment).on_test_stopping()


def _on_test_stop(environment: Environment, **_: Any) -> None:
    session_of(environment).on_test_stop()


def _on_quitting(environment: Environment, **_: Any) -> None:
    session_of(environment).on_quitting()


_hooks: Any = events
_hooks.init.add_listener(_on_init)
_hooks.test_start.add_listener(_on_test_start)
_hooks.test_stopping.add_listener(_on_test_stopping)
_hooks.test_stop.add_listener(_on_test_stop)
_hooks.quitting.add_listener(_on_quitting)
