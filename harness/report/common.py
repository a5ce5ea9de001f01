"""Helpers shared by the renderers: verdict, ordering and formatting."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any, Literal

from harness.findings import Finding, RunResult, SuiteResult

Verdict = Literal["passed", "failed", "error"]
SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}
# Characters XML 1.0 cannot carry at all (not even escaped); evidence may hold any bytes.
_XML_ILLEGAL = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def verdict(result: RunResult) -> Verdict:
    """error: a suite could not run; failed: any finding (the CLI exits 1); else passed."""
    if any(s.status == "error" for s in result.suites):
        return "error"
    if result.findings or any(s.status == "failed" for s in result.suites):
        return "failed"
    return "passed"


def billable_runs(result: RunResult) -> int:
    """Tasks the run created on the target (each suite's `tasks_created` metric), i.e. its cost."""
    total = 0
    for suite in result.suites:
        value = suite.metrics.get("tasks_created", 0)
        if isinstance(value, int) and not isinstance(value, bool):
            total += value
    return total


def sorted_findings(result: RunResult) -> list[Finding]:
    """Errors first, then warnings, then info; suite order and discovery order kept within."""
    indexed = list(enumerate(result.findings))
    indexed.sort(key=lambda item: (SEVERITY_ORDER.get(item[1].severity, 9), item[0]))
    return [f for _, f in indexed]


def count_by_severity(findings: Iterable[Finding]) -> dict[str, int]:
    counts = {"error": 0, "warning": 0, "info": 0}
    for finding in findings:
        counts[finding.severity] = counts.get(finding.severity, 0) + 1
    return counts


def findings_by_check(suite: SuiteResult) -> dict[str, list[Finding]]:
    """Every check of the suite (declared order) with its findings, plus checks only findings name."""
    by_check: dict[str, list[Finding]] = {check: [] for check in suite.checks}
    for finding in suite.findings:
        by_check.setdefault(finding.check, []).append(finding)
    return by_check


def format_value(value: Any, limit: int = 40) -> str:
    """A short human form of a metric value."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def key_metrics(metrics: dict[str, Any], limit: int = 4) -> list[tuple[str, str]]:
    """The first `limit` scalar metrics (nested ones are for the HTML page and results.json)."""
    out: list[tuple[str, str]] = []
    for name, value in metrics.items():
        if isinstance(value, bool | int | float | str) and value is not None:
            out.append((name, format_value(value, 24)))
            if len(out) == limit:
                break
    return out


def format_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


def evidence_text(evidence: dict[str, Any], limit: int = 20_000) -> str:
    """Pretty JSON of a finding's evidence, cut at `limit` characters."""
    text = json.dumps(evidence, indent=2, sort_keys=False, default=str, ensure_ascii=False)
    if len(text) > limit:
        text = text[:limit] + f"\n… ({len(text) - limit:,} more characters in results.json)"
    return text


def xml_safe(text: str) -> str:
    return _XML_ILLEGAL.sub("\ufffd", text)
