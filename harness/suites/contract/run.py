"""Conformance suite (`harness contract`): schemathesis against contracts/openapi.yaml, plus the
checks schemathesis lacks (envelope, problem bodies, rate-limit headers, task status codes,
stream conformance, official-SDK hazards, lifecycle drift).

Everything is paced per rate-limit group (limits.yaml), bounded by a time budget and the task
budget, and every finding carries evidence and a curl reproduction without the key. The parts
live beside it in this package.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.checks.issues import CHECKS, SCHEMATHESIS_CHECKS, SUITE, Issue
from harness.checks.responses import OperationTable, RuleSet
from harness.checks.streams import StreamLineSchema
from harness.contract import Lifecycle, Limits, contracts_dir, load_lifecycle
from harness.findings import SuiteResult
from harness.history import HistoryWriter
from harness.net import deadline
from harness.net.recording import ExchangeRecorder
from harness.settings import DEFAULT_MAX_TASKS
from harness.suites.contract.fuzz import FuzzOptions, FuzzStats, run_schemathesis
from harness.suites.contract.probes import ProbeOptions, Prober, drift_issues
from harness.suites.contract.traffic import Collector, Pacer, StopRun, Traffic

__all__ = ["CHECKS", "SUITE", "ConformanceOptions", "run_conformance"]


@dataclass
class ConformanceOptions:
    """How deep and how long. `max_examples=0` skips schemathesis (probes and rules only)."""

    max_examples: int = 20  # per operation and generation mode; scenarios of the stateful phase too
    stateful_steps: int = 6
    coverage_cap: int = 60  # schemathesis coverage cases per operation
    phases: tuple[str, ...] = ("coverage", "fuzzing", "stateful")
    probes: bool = True
    time_budget_s: float = 300.0  # the whole suite; phases still to run are skipped past it
    request_timeout_s: float = 10.0
    stream_deadline_s: float = 20.0  # a probe stream must end within this
    fuzz_stream_cap_s: float = 2.0  # streams opened by schemathesis are cut after this
    close_grace_s: float = 1.0  # the server must close a stream this soon after the terminal update
    hold_s: float = 1.5  # the cancel probe keeps a running task's stream open this long
    utilisation: float = 0.8  # share of each rate-limit group's budget the suite may use
    max_tasks: int = DEFAULT_MAX_TASKS
    seed: int | None = None  # schemathesis generation; None: a random one, reported in the metrics
    schema_path: Path | None = None
    wire_lifecycle: Lifecycle | None = None  # the contract's own table (drift reference)
    apps: dict[str, dict[str, Any]] = field(default_factory=lambda: ProbeOptions().apps)
    history: Path | None = None  # where every request is recorded (the run's observations)
    operations: tuple[str, ...] = ()  # schemathesis' coverage and fuzzing on these only (empty: all)


def _load_openapi(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    if not isinstance(document, dict):
        raise ValueError(f"{path}: not an OpenAPI document")
    return document


def run_conformance(base_url: str, keys: list[str], lifecycle: Lifecycle, limits: Limits,
                    options: ConformanceOptions | None = None,
                    progress: Callable[[str], None] | None = None) -> SuiteResult:
    """Check `base_url` against the contract with the first key; returns the suite's result."""
    options = options or ConformanceOptions()
    note = progress or (lambda _msg: None)
    started = time.monotonic()
    schema_path = options.schema_path or contracts_dir() / "openapi.yaml"
    openapi = _load_openapi(schema_path)
    rules = RuleSet(lifecycle, limits, OperationTable.from_openapi(openapi))
    collector = Collector(list(keys))
    group_limits = {name: group.limit for name, group in limits.groups.items()}
    traffic = Traffic(base_url.rstrip("/"), list(keys), rules, collector,
                      Pacer(group_limits, limits.window_seconds, options.utilisation),
                      stop_at=started + deadline.capped(options.time_budget_s),
                      max_tasks=options.max_tasks)
    # The run's or the suite's deadline comes before the suite's own budget: when it stops the
    # suite, that is the deadline's finding (CT-DEADLINE), not a transport problem.
    cut_by_deadline = deadline.capped(options.time_budget_s) < options.time_budget_s
    writer = HistoryWriter(options.history) if options.history is not None else None
    if writer is not None:
        traffic.recorder = ExchangeRecorder(writer, SUITE, None)  # each request names its key
    stats = FuzzStats()
    seed = options.seed if options.seed is not None else random.randrange(2**32)
    prober: Prober | None = None
    stopped: str | None = None
    checks = list(CHECKS)
    try:
        if options.probes:
            prober = Prober(traffic, keys[0], lifecycle, StreamLineSchema(openapi),
                            ProbeOptions(stream_deadline_s=options.stream_deadline_s,
                                         close_grace_s=options.close_grace_s, hold_s=options.hold_s,
                                         request_timeout_s=options.request_timeout_s, apps=options.apps),
                            note)
            try:
                prober.run()
            finally:
                prober.close()
        if options.max_examples > 0 and options.phases:
            stats = run_schemathesis(schema_path, base_url, keys[0], traffic, FuzzOptions(
                max_examples=options.max_examples, stateful_examples=options.max_examples,
                stateful_steps=options.stateful_steps, coverage_cap=options.coverage_cap,
                phases=options.phases, request_timeout_s=options.request_timeout_s,
                stream_cap_s=options.fuzz_stream_cap_s, seed=seed, lifecycle=lifecycle, limits=limits,
                operations=options.operations),
                note)
            stopped = stats.stopped
        else:
            checks = [c for c in checks if c not in SCHEMATHESIS_CHECKS]
    except StopRun:
        stopped = "time budget spent"
    finally:
        if writer is not None:
            writer.close()
    if prober is not None:
        wire = options.wire_lifecycle or load_lifecycle()
        for issue in drift_issues(lifecycle, wire, prober.book):
            collector.add(issue, "lifecycle")
    if not options.probes:
        checks = [c for c in checks
                  if c != "CT-LIFECYCLE-DRIFT" and not c.startswith(("CT-STREAM", "CT-SDK"))]
    if stopped and cut_by_deadline and (passed := deadline.current()) is not None:
        raise passed
    if stopped:
        collector.add(Issue("CT-TRANSPORT", f"the run stopped early: {stopped} after "
                            f"{options.time_budget_s:g} s; later phases were skipped", key="budget",
                            severity="warning"), "suite")
    findings = collector.result()
    duration = time.monotonic() - started
    fuzz_seconds = stats.seconds or 0.0
    metrics: dict[str, Any] = {
        "cases": stats.cases,
        "cases_per_s": round(stats.cases / fuzz_seconds, 1) if fuzz_seconds > 0 else 0.0,
        "cases_by_phase": stats.by_phase,
        "schemathesis_seconds": round(fuzz_seconds, 3),
        "operations": stats.operations,
        "requests": traffic.requests,
        "tasks_created": traffic.tasks_created,
        "rate_limited": traffic.rate_limited,
        "paced_wait_s": round(traffic.pacer.waited_s, 3),
        "streams_checked": prober.streams if prober is not None else 0,
        "statuses_seen": {str(code): sorted(names) for code, names in
                          sorted((prober.book.names if prober else {}).items())},
        "findings_dropped": collector.dropped,
        "max_examples": options.max_examples,
        "seed": seed,  # `harness contract --seed N` generates the same cases again
        "lifecycle": lifecycle.name,
        "stopped": stopped,
        # Requests whose answer never came: neither right nor wrong (docs/checks.md, "Indeterminate").
        "indeterminate": len(traffic.indeterminate),
        "indeterminate_requests": traffic.indeterminate[:10],
    }
    skipped: dict[str, str] = {}
    if prober is not None:
        if prober.skipped:
            metrics["probes_skipped"] = prober.skipped
        ran = {f.check for f in findings}
        for check, why in prober.unjudged(stopped).items():
            if check in checks and check not in ran:
                checks.remove(check)
                skipped[check] = why
    if stats.errors:
        metrics["schemathesis_errors"] = stats.errors
    if stats.no_negative:
        metrics["negative_given_up"] = stats.no_negative  # 50 draws, none schema-violating
    return SuiteResult(name=SUITE, status="failed" if findings else "passed", checks=checks,
                       metrics=metrics, findings=findings, duration_s=round(duration, 3),
                       skipped=skipped)
