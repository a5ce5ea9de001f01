"""Two runs compared: per endpoint and percentile with the noise taken into account, and per check.

Noise: a percentile measured from n samples is uncertain. With the phases' HDR histograms the
judge takes each percentile's 99 % confidence interval from the order statistics (the ranks
n*q -/+ 2.576*sqrt(n*q*(1-q)) read off the histogram) and calls a change a regression only when
the new run's lower bound is above the baseline's upper bound by more than the gate. Too few
samples for the percentile is "insufficient data", never a verdict. Without histograms (an older
run) it compares the single numbers and says so.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from harness.compare.gates import LATENCY_STATS, Gate
from harness.findings import RunResult

Verdict = Literal["regressed", "improved", "unchanged", "insufficient data", "new", "gone"]
Z_99 = 2.576
# A percentile needs this many samples beyond it to be judged (p99: 1,000 samples).
TAIL_SAMPLES = 10


@dataclass
class Estimate:
    """A percentile (ms) and its confidence interval; `samples` behind it."""

    value: float | None
    low: float | None
    high: float | None
    samples: int


@dataclass
class StatChange:
    scenario: str
    endpoint: str
    stat: str
    baseline: float | None
    new: float | None
    change: float | None  # (new - baseline) / baseline
    verdict: Verdict
    gate: str | None
    how: str  # "interval" (histograms) or "point" (single numbers)


@dataclass
class CheckChange:
    check: str
    suite: str
    baseline: str
    new: str


@dataclass
class Comparison:
    baseline_run: str
    new_run: str
    stats: list[StatChange] = field(default_factory=list)
    checks: list[CheckChange] = field(default_factory=list)
    new_findings: dict[str, int] = field(default_factory=dict)  # check -> count in the new run
    fixed_findings: dict[str, int] = field(default_factory=dict)  # check -> count in the baseline
    notes: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[StatChange]:
        return [s for s in self.stats if s.verdict == "regressed"]

    @property
    def broken_checks(self) -> list[CheckChange]:
        """Checks that passed in the baseline and fail now."""
        return [c for c in self.checks if c.baseline == "passed" and c.new == "failed"]

    @property
    def regressed(self) -> bool:
        return bool(self.regressions or self.broken_checks)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["regressed"] = self.regressed
        return data


def check_statuses(result: RunResult) -> dict[tuple[str, str], str]:
    """(suite, check) -> passed | failed | skipped."""
    out: dict[tuple[str, str], str] = {}
    for suite in result.suites:
        for check in suite.checks:
            out[(suite.name, check)] = "passed"
        for check in suite.skipped:
            out[(suite.name, check)] = "skipped"
        for finding in suite.findings:
            out[(suite.name, finding.check)] = "failed"
    return out


def _finding_counts(result: RunResult) -> dict[str, int]:
    counts: dict[str, int] = {}
    for finding in result.findings:
        counts[finding.check] = counts.get(finding.check, 0) + 1
    return counts


def load_phases(result: RunResult) -> dict[str, dict[str, Any]]:
    """Scenario -> that phase's metrics (endpoints, hdr) of the run's load suite."""
    for suite in result.suites:
        if suite.name == "load" and isinstance(suite.metrics.get("scenarios"), dict):
            return {str(k): v for k, v in suite.metrics["scenarios"].items() if isinstance(v, dict)}
    return {}


def _rows(phase: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The phase's per-endpoint rows; a run from before the tables has them rebuilt."""
    from harness.suites.load.endpoints import endpoint_rows

    rows = phase.get("endpoints")
    if not isinstance(rows, list):
        found = phase.get("by_request")
        by_request: dict[str, Any] = found if isinstance(found, dict) else {}
        rows = endpoint_rows({k: int(v.get("requests", 0)) for k, v in by_request.items()},
                             {k: int(v.get("errors", 0)) for k, v in by_request.items()},
                             phase.get("latency_ms") or {}, float(phase.get("duration_s") or 0.0))
    return {str(r["endpoint"]): r for r in rows if isinstance(r, dict) and "endpoint" in r}


def estimate(histogram: Any, stat: str) -> Estimate:
    """The percentile of an HDR histogram (µs) in ms, with its 99 % order-statistic interval."""
    n = int(histogram.get_total_count())
    q = float(stat[1:]) / 100.0
    if n == 0:
        return Estimate(None, None, None, 0)
    spread = Z_99 * math.sqrt(n * q * (1.0 - q))
    low_rank, high_rank = max(1.0, n * q - spread), min(float(n), n * q + spread)

    def at(rank: float) -> float:
        return float(histogram.get_value_at_percentile(100.0 * rank / n)) / 1000.0

    return Estimate(at(n * q), at(low_rank), at(high_rank), n)


def _enough(samples: int, stat: str) -> bool:
    q = float(stat[1:]) / 100.0
    return samples * (1.0 - q) >= TAIL_SAMPLES


def _latency_verdict(stat: str, base: Estimate, new: Estimate, gate: Gate | None) -> Verdict:
    """Latency grows the wrong way; with intervals, only a change beyond both is a verdict."""
    tolerance = gate.tolerance if gate else 0.0
    if base.value is None or new.value is None:
        return "insufficient data"
    if not (_enough(base.samples, stat) and _enough(new.samples, stat)):
        return "insufficient data"
    if base.low is None or base.high is None or new.low is None or new.high is None:
        base_low = base_high = base.value
        new_low = new_high = new.value
    else:
        base_low, base_high, new_low, new_high = base.low, base.high, new.low, new.high
    if gate is not None and new_low > base_high * (1.0 + tolerance):
        return "regressed"
    if new_high < base_low * (1.0 - tolerance):
        return "improved"
    return "unchanged"


def _point(row: dict[str, Any], stat: str) -> Estimate:
    value = row.get(stat)
    return Estimate(float(value) if isinstance(value, int | float) else None, None, None,
                    int(row.get("requests") or 0))


def _change(base: float | None, new: float | None) -> float | None:
    if base is None or new is None or base == 0:
        return None
    return round((new - base) / base, 4)


def compare(baseline: RunResult, new: RunResult, gates: dict[str, Gate]) -> Comparison:
    """Everything that moved between `baseline` and `new`."""
    from harness.suites.load.hdr import HdrSet

    out = Comparison(baseline.run_id, new.run_id)
    base_phases, new_phases = load_phases(baseline), load_phases(new)
    if not base_phases or not new_phases:
        missing = ("neither run" if not base_phases and not new_phases
                   else "the baseline" if not base_phases else "the new run")
        out.notes.append(f"no load numbers to compare: {missing} ran the load suite")
    for scenario in sorted(set(base_phases) & set(new_phases)):
        b_phase, n_phase = base_phases[scenario], new_phases[scenario]
        b_rows, n_rows = _rows(b_phase), _rows(n_phase)
        b_hdr, n_hdr = HdrSet.decode(b_phase.get("hdr") or {}), HdrSet.decode(n_phase.get("hdr") or {})
        for endpoint in sorted(set(b_rows) | set(n_rows)):
            if endpoint not in b_rows or endpoint not in n_rows:
                verdict: Verdict = "new" if endpoint not in b_rows else "gone"
                out.stats.append(StatChange(scenario, endpoint, "requests", None, None, None, verdict,
                                            None, "point"))
                continue
            for stat in LATENCY_STATS:
                gate = gates.get(stat)
                b_hist, n_hist = b_hdr.histograms.get(endpoint), n_hdr.histograms.get(endpoint)
                interval = b_hist is not None and n_hist is not None
                if interval:
                    b_est, n_est = estimate(b_hist, stat), estimate(n_hist, stat)
                else:
                    b_est = _point(b_rows[endpoint], stat)
                    n_est = _point(n_rows[endpoint], stat)
                verdict = _latency_verdict(stat, b_est, n_est, gate)
                out.stats.append(StatChange(scenario, endpoint, stat, b_est.value, n_est.value,
                                            _change(b_est.value, n_est.value), verdict,
                                            gate.text if gate else None, "interval" if interval else "point"))
            b_rps, n_rps = b_rows[endpoint].get("rps"), n_rows[endpoint].get("rps")
            rps_gate = gates.get("rps")
            rps_verdict: Verdict = "unchanged"
            if b_rps is None or n_rps is None:
                rps_verdict = "insufficient data"
            elif rps_gate is not None and n_rps < b_rps * (1.0 - rps_gate.tolerance):
                rps_verdict = "regressed"
            elif n_rps > b_rps * (1.0 + (rps_gate.tolerance if rps_gate else 0.10)):
                rps_verdict = "improved"
            out.stats.append(StatChange(scenario, endpoint, "rps", b_rps, n_rps, _change(b_rps, n_rps),
                                        rps_verdict, rps_gate.text if rps_gate else None, "point"))
    for scenario in sorted(set(base_phases) ^ set(new_phases)):
        where = "baseline" if scenario in base_phases else "new run"
        out.notes.append(f"scenario {scenario} ran only in the {where}")
    b_checks, n_checks = check_statuses(baseline), check_statuses(new)
    for key in sorted(set(b_checks) | set(n_checks)):
        before, after = b_checks.get(key, "absent"), n_checks.get(key, "absent")
        if before != after:
            out.checks.append(CheckChange(key[1], key[0], before, after))
    b_counts, n_counts = _finding_counts(baseline), _finding_counts(new)
    out.new_findings = {c: n for c, n in sorted(n_counts.items()) if c not in b_counts}
    out.fixed_findings = {c: n for c, n in sorted(b_counts.items()) if c not in n_counts}
    return out
