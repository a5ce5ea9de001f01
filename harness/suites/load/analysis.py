"""Turn finished load phases into findings and metrics (no Locust import; runs anywhere).

Input: phase folders written by the load processes (`summary.json` with merged metrics and
HDR histograms, `observations.jsonl` with the merged history). Output: findings (`LD-...`
plus the lifecycle checker's `LC-...` over the whole history) and metrics.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

from harness.checks.lifecycle import CHECKS as LC_CHECKS
from harness.checks.lifecycle import InvariantOptions, check_history
from harness.checks.ratelimit import remaining_problem, reset_value_problem, retry_after_problem
from harness.checks.thresholds import MetricsView, ThresholdResult, evaluate, parse_thresholds
from harness.contract import Lifecycle
from harness.findings import Finding, SuiteStatus
from harness.history import HISTORY_FILE, Observation, ObservationRecord, read_history, read_records
from harness.suites.load.endpoints import endpoint_rows
from harness.suites.load.metrics import PhaseMetrics
from harness.suites.load.scenarios import SCENARIOS

SUITE = "load"
CHECKS = {
    "LD-UNEXPECTED-ERRORS": "under load every request gets a contract answer: no 5xx, no "
                            "transport error, no malformed body or stream event",
    "LD-THRESHOLD": "every configured SLO threshold holds",
    "LD-UPLOAD-ROUNDTRIP": "under load, a file uploaded and passed through an app downloads "
                           "unchanged",
    "LD-CONTRACT-UNDER-LOAD": "under load (contract_mix), the sampled answers to the contract's own "
                              "generated requests are ones the contract documents",
    "LD-AT-LIMIT-NO-429": "a key paced exactly at its documented budget is never refused",
    "LD-AT-LIMIT-REACHED": "the at-limit run filled whole windows (otherwise it proves little)",
    "LD-OVER-LIMIT-SHED": "at twice the budget the excess is refused with 429",
    "LD-OVER-LIMIT-ADMITTED": "never more than the limit admitted in one window of a key and group",
    "LD-OVER-LIMIT-EARLY": "no 429 in a window before the limit was admitted",
    "LD-LIMIT-HEADERS": "rate-limit headers are consistent under load (Limit as documented, "
                        "Remaining counts down and is 0 on a 429, Reset ahead by at most a "
                        "window, Retry-After and a rate_limited problem body on a 429)",
}
RESET_SLACK_S = 1.0
MAX_WITNESSES = 3


@dataclass
class Phase:
    scenario: str
    kind: str
    directory: Path
    summary: dict[str, Any]
    metrics: PhaseMetrics
    duration_s: float
    window_s: float
    limits: dict[str, int]

    @classmethod
    def load(cls, directory: Path) -> Phase:
        summary = json.loads((directory / "summary.json").read_text())
        config = summary.get("config", {})
        scenario = str(summary.get("scenario") or config.get("scenario") or directory.name)
        known = SCENARIOS.get(scenario)
        return cls(scenario, known.kind if known else "flow", directory, summary,
                   PhaseMetrics.from_dict(summary.get("metrics", {})),
                   float(summary.get("duration_s") or 0.0), float(config.get("window_s") or 60.0),
                   {k: int(v) for k, v in (config.get("limits") or {}).items()})

    def observations(self) -> Iterator[Observation]:
        path = self.directory / HISTORY_FILE
        if path.exists():
            yield from read_history(path)

    def records(self) -> Iterator[ObservationRecord]:
        """The history as decoded records, for readers of fields only (the lifecycle checker)."""
        path = self.directory / HISTORY_FILE
        if path.exists():
            yield from read_records(path)

    def view(self) -> MetricsView:
        return view_of(self.metrics, self.duration_s)


def view_of(metrics: PhaseMetrics, duration_s: float) -> MetricsView:
    return MetricsView(duration_s=duration_s, latency=metrics.hdr.summaries(),
                       requests=dict(metrics.requests), errors=dict(metrics.errors),
                       rate_limited=dict(metrics.rate_limited),
                       iterations=metrics.counts.get("iterations", 0),
                       dropped_iterations=metrics.counts.get("dropped_iterations", 0))


@dataclass
class Analysis:
    findings: list[Finding] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    checks: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # check id -> why it judged nothing
    refused: list[str] = field(default_factory=list)  # why workers refused the master's plan

    @property
    def status(self) -> SuiteStatus:
        if self.refused:
            return "error"  # part of the load asked for never ran: whatever else, not a pass
        return "failed" if self.findings else "passed"

    def find(self, check: str, message: str, evidence: dict[str, Any] | None = None,
             severity: str = "error", task_id: str | None = None, repro: str | None = None) -> None:
        self.findings.append(Finding(check=check, suite=SUITE, message=message, task_id=task_id,
                                     severity=severity,  # type: ignore[arg-type]
                                     evidence=evidence or {}, repro=repro))


# -- rate limits in the limit scenarios -----------------------------------------------------

@dataclass
class _Window:
    admitted: int = 0
    rejected: int = 0
    lost: int = 0  # no answer: the server may or may not have counted it
    remaining: list[int] = field(default_factory=list)
    first: Observation | None = None


def _brief(obs: Observation) -> dict[str, Any]:
    return {k: v for k, v in json.loads(obs.to_json()).items() if k not in ("output", "error")}


def check_limits(phase: Phase, result: Analysis) -> dict[str, Any]:
    """Per key, group and server window: admitted vs limit, 429s, header consistency."""
    windows: dict[tuple[str, str, Any], _Window] = {}
    problems: dict[str, list[dict[str, Any]]] = {}
    problem_counts: dict[str, int] = {}
    rejected_total = 0
    rejected_witness: Observation | None = None
    window_s = phase.window_s

    def problem(kind: str, obs: Observation, detail: str) -> None:
        problem_counts[kind] = problem_counts.get(kind, 0) + 1
        kept = problems.setdefault(kind, [])
        if len(kept) < MAX_WITNESSES:
            kept.append({"detail": detail, "observation": _brief(obs)})

    for obs in phase.observations():
        ex = obs.extra
        group = ex.get("rl_group")
        if not isinstance(group, str) or group not in phase.limits:
            continue
        limit = phase.limits[group]
        key = obs.key or "?"
        if obs.recv_ns is None or obs.http is None:
            when = math.floor(obs.wall / window_s)
            windows.setdefault((key, group, ("t", when)), _Window()).lost += 1
            continue
        answered = obs.wall + (obs.recv_ns - obs.send_ns) / 1e9
        reset = ex.get("rl_reset")
        window_id: Any = reset if isinstance(reset, int) else ("t", math.floor(answered / window_s))
        window = windows.setdefault((key, group, window_id), _Window())
        if window.first is None:
            window.first = obs
        code = obs.http
        if ex.get("rl_missing"):
            problem("missing", obs, "no X-RateLimit-* headers")
            continue
        if "rl_limit" in ex and ex["rl_limit"] != limit:
            problem("limit", obs, f"X-RateLimit-Limit {ex['rl_limit']}, documented {limit}")
        remaining = ex.get("rl_remaining")
        if "rl_remaining_raw" in ex:
            problem("remaining", obs, f"X-RateLimit-Remaining {ex['rl_remaining_raw']!r} is not an integer")
        issue = None if not isinstance(reset, int) else reset_value_problem(
            reset, sent=obs.wall, answered=answered, window_s=window_s, past_slack_s=RESET_SLACK_S,
            ahead_slack_s=RESET_SLACK_S)
        if issue is not None:
            problem("reset", obs, f"X-RateLimit-Reset {issue}")
        elif "rl_reset_raw" in ex:
            problem("reset", obs, f"X-RateLimit-Reset {ex['rl_reset_raw']!r} is not an epoch second")
        if 200 <= code < 300:
            window.admitted += 1
            if isinstance(remaining, int):
                window.remaining.append(remaining)
                issue = remaining_problem(remaining, refused=False, limit=limit)
                if issue is not None:
                    problem("remaining", obs, f"X-RateLimit-Remaining {issue}")
        elif code == 429:
            window.rejected += 1
            rejected_total += 1
            rejected_witness = rejected_witness or obs
            issue = None if not isinstance(remaining, int) else remaining_problem(remaining, refused=True)
            if issue is not None:
                problem("remaining", obs, f"X-RateLimit-Remaining {issue}")
            shown = ex.get("retry_after", ex.get("retry_after_raw"))
            issue = retry_after_problem(None if shown is None else str(shown), window_s=window_s)
            if issue is not None:
                problem("retry_after", obs, f"on a 429, {issue}")
            if ex.get("rl_problem") is False:
                problem("problem", obs, "the 429 body is not a problem+json with type …/rate_limited")
        else:
            window.lost += 1  # some other answer: counted as an unexpected error elsewhere
    for (key, group, _window_id), window in windows.items():
        values = window.remaining
        if len(values) != len(set(values)):
            duplicates = len(values) - len(set(values))
            assert window.first is not None
            problem("counting", window.first, f"X-RateLimit-Remaining repeated {duplicates} time(s) "
                    f"among {len(values)} admissions of one window ({key}, {group}): it must count down "
                    "by one per admitted request")
    limit_of = phase.limits
    full = [w for (_, g, _), w in windows.items() if w.admitted + w.rejected >= limit_of[g]]
    over = [(k, w) for k, w in windows.items() if w.admitted > limit_of[k[1]]]
    early = [(k, w) for k, w in windows.items()
             if w.rejected and w.admitted < limit_of[k[1]] and not w.lost]
    summary = {"windows": len(windows), "windows_filled": len(full), "rejected": rejected_total,
               "header_problems": problem_counts}
    if problem_counts:
        result.find("LD-LIMIT-HEADERS", f"{phase.scenario}: rate-limit headers inconsistent: "
                    + ", ".join(f"{k} x{v}" for k, v in sorted(problem_counts.items())),
                    {"scenario": phase.scenario, "problems": problems, "counts": problem_counts})
    if phase.kind == "at_limit":
        if rejected_total:
            assert rejected_witness is not None
            result.find("LD-AT-LIMIT-NO-429", f"at_limit: {rejected_total} request(s) refused with 429 "
                        "while every key stayed exactly within its documented budget",
                        {"first": _brief(rejected_witness), "rate_limited": phase.metrics.rate_limited},
                        repro="harness load --scenario at_limit")
        lanes = {(k, g) for (k, g, _) in windows}
        filled = {(k, g) for (k, g, _), w in windows.items() if w.admitted + w.rejected >= limit_of[g]}
        if lanes and not filled:
            result.find("LD-AT-LIMIT-REACHED", "at_limit never filled a whole window (the load "
                        "generator fell behind its slots, or the run was shorter than two windows): "
                        "the no-429 result is inconclusive",
                        {"slots_sent": phase.metrics.counts.get("slots_sent", 0),
                         "slots_missed": phase.metrics.counts.get("slots_missed", 0),
                         "windows": len(windows)}, severity="warning")
    if phase.kind == "over_limit":
        sent_over = [w for (_, g, _), w in windows.items() if w.admitted + w.rejected > limit_of[g]]
        if sent_over and not rejected_total:
            result.find("LD-OVER-LIMIT-SHED", "over_limit: twice the budget was sent and nothing "
                        "was refused with 429", {"windows_over_budget": len(sent_over)})
        if over:
            (key, group, window_id), window = over[0]
            result.find("LD-OVER-LIMIT-ADMITTED", f"over_limit: {len(over)} window(s) admitted more than "
                        f"the limit; e.g. {key} {group} admitted {window.admitted} of {limit_of[group]}",
                        {"key": key, "group": group, "window": str(window_id), "admitted": window.admitted,
                         "limit": limit_of[group], "rejected": window.rejected})
        if early:
            (key, group, window_id), window = early[0]
            result.find("LD-OVER-LIMIT-EARLY", f"over_limit: {len(early)} window(s) refused requests "
                        f"before the limit was reached; e.g. {key} {group} admitted {window.admitted} of "
                        f"{limit_of[group]} and refused {window.rejected}",
                        {"key": key, "group": group, "window": str(window_id), "admitted": window.admitted,
                         "limit": limit_of[group], "rejected": window.rejected})
    return summary


# -- the whole analysis ----------------------------------------------------------------------

def _scenario_metrics(phase: Phase) -> dict[str, Any]:
    m = phase.metrics
    total = sum(m.requests.values())
    return {
        "duration_s": phase.duration_s,
        "users": phase.summary.get("users"),
        "workers": len(phase.summary.get("workers", [])) or 1,
        "requests": total,
        "rps": round(total / phase.duration_s, 3) if phase.duration_s else None,
        "errors": sum(m.errors.values()),
        "rate_limited": sum(m.rate_limited.values()),
        "by_request": {name: {"requests": count, "errors": m.errors.get(name, 0),
                              "rate_limited": m.rate_limited.get(name, 0)}
                       for name, count in sorted(m.requests.items())},
        "counts": dict(sorted(m.counts.items())),
        "error_reasons": dict(sorted(m.reasons.items())),
        "latency_ms": m.hdr.summaries(),
        "endpoints": endpoint_rows(m.requests, m.errors, m.hdr.summaries(), phase.duration_s),
        # The histograms themselves: `harness compare` judges distributions, not single numbers.
        "hdr": m.hdr.encode(),
        "observations": phase.summary.get("observations"),
        "locust": phase.summary.get("locust"),
    }


def analyse_phases(phase_dirs: list[Path], thresholds: list[str], lifecycle: Lifecycle,
                   invariant_options: InvariantOptions | None = None) -> Analysis:
    """Check finished phases: invariants over the whole history, limits, thresholds, errors."""
    result = Analysis(checks=[*CHECKS, *LC_CHECKS])
    parsed = parse_thresholds(thresholds)
    phases = [Phase.load(d) for d in phase_dirs if (d / "summary.json").exists()]
    missing = [str(d) for d in phase_dirs if not (d / "summary.json").exists()]
    if missing:
        result.notes.append(f"phases without a summary (crashed?): {', '.join(missing)}")
    overall = PhaseMetrics()
    duration = 0.0
    per_scenario: dict[str, dict[str, Any]] = {}
    views: dict[str, MetricsView] = {}
    for phase in phases:
        overall.merge(phase.metrics)
        duration += phase.duration_s
        per_scenario[phase.scenario] = _scenario_metrics(phase)
        views[phase.scenario] = phase.view()
        if phase.kind in ("at_limit", "over_limit"):
            per_scenario[phase.scenario]["limits"] = check_limits(phase, result)
        exceptions = phase.summary.get("locust_exceptions") or []
        if exceptions:
            result.notes.append(f"{phase.scenario}: {sum(e.get('count', 1) for e in exceptions)} "
                                f"exception(s) inside load users: {exceptions[0].get('msg')}")
        workers = phase.summary.get("workers", [])
        silent = [w for w in workers if not w.get("done")]
        if silent:
            result.notes.append(f"{phase.scenario}: {len(silent)} worker(s) sent no final report")
        refused = [w["refused"] for w in workers if w.get("refused")]
        if refused:
            result.refused += refused
            result.notes.append(f"{phase.scenario}: {len(refused)} worker(s) refused the plan: {refused[0]}")
    report = check_history(chain.from_iterable(p.records() for p in phases), lifecycle,
                           invariant_options)
    for finding in report.findings:
        result.findings.append(finding.model_copy(update={"suite": SUITE}))
    # Unexpected errors: a finding unless the user set an `errors` threshold (then it decides).
    errors = sum(overall.errors.values())
    user_gates_errors = any(t.metric == "errors" and t.stat is None for t in parsed)
    if errors and not user_gates_errors:
        samples = {k: v for k, v in overall.samples.items() if k in overall.reasons}
        result.find("LD-UNEXPECTED-ERRORS", f"{errors} unexpected error(s) in "
                    f"{sum(overall.requests.values())} requests: "
                    + ", ".join(f"{k} x{v}" for k, v in sorted(overall.reasons.items(),
                                                               key=lambda kv: -kv[1])[:5]),
                    {"reasons": overall.reasons, "samples": samples})
    mismatches = overall.counts.get("upload_mismatch", 0)
    if not overall.counts.get("uploads_compared", 0):
        # Never a vacuous pass: no upload scenario ran, or the profile's file app is not one
        # whose output hands the uploaded bytes back.
        result.checks.remove("LD-UPLOAD-ROUNDTRIP")
        result.skipped["LD-UPLOAD-ROUNDTRIP"] = ("no upload was compared (the upload scenario did not "
                                                 "run, or the profile's file app does not hand the "
                                                 "bytes back)")
    elif mismatches:
        result.find("LD-UPLOAD-ROUNDTRIP", f"{mismatches} of {overall.counts.get('uploads_compared', 0)} "
                    "uploads came back different from the bytes uploaded",
                    {"samples": overall.samples.get("upload_mismatch", [])},
                    repro="harness load --scenario upload")
    checked = overall.counts.get("contract_checked", 0)
    violations = overall.counts.get("contract_violations", 0)
    if not checked:
        result.checks.remove("LD-CONTRACT-UNDER-LOAD")
        result.skipped["LD-CONTRACT-UNDER-LOAD"] = "no contract_mix phase ran (or it judged no answer)"
    elif violations:
        found = overall.samples.get("contract", [])
        example = found[0].get("problem", "?") if found else "?"
        result.find("LD-CONTRACT-UNDER-LOAD", f"{violations} of {checked} sampled answers under load are "
                    f"not what the contract documents; e.g. {example}",
                    {"checked": checked, "violations": violations, "samples": found},
                    repro="harness load --scenario contract_mix")
    results: list[ThresholdResult] = evaluate(parsed, view_of(overall, duration),
                                              {k: v for k, v in views.items()})
    for item in results:
        if item.passed is False:
            result.find("LD-THRESHOLD", f"threshold breached: {item.describe()}",
                        {"threshold": item.threshold.text, "observed": item.observed,
                         "limit": item.threshold.value, "kind": item.threshold.kind})
    result.metrics = {
        "tasks_created": overall.counts.get("tasks_created", 0),
        "requests": sum(overall.requests.values()),
        "errors": errors,
        # Requests whose answer never came (no head by the deadline): neither right nor wrong.
        "indeterminate": overall.counts.get("indeterminate", 0),
        "indeterminate_samples": {k: v for k, v in overall.samples.items()
                                  if k.startswith("indeterminate: ")},
        "rate_limited": sum(overall.rate_limited.values()),
        "duration_s": round(duration, 3),
        "iterations": overall.counts.get("iterations", 0),
        "dropped_iterations": overall.counts.get("dropped_iterations", 0),
        "latency_ms": overall.hdr.summaries(),
        "scenarios": per_scenario,
        "thresholds": [{"threshold": r.threshold.text, "observed": r.observed, "passed": r.passed}
                       for r in results],
        "invariants": report.metrics,
        "notes": result.notes,
    }
    return result
