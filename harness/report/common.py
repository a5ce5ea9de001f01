"""Helpers shared by the renderers: verdict, ordering and formatting."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
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
            # A seed is pasted into --seed: no thousands separators.
            plain = name.endswith("seed") and isinstance(value, int)
            shown = str(value) if plain else format_value(value, 24)
            out.append((name, shown))
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


ENDPOINT_COLUMNS = (("requests", "requests"), ("rps", "rps"), ("errors", "errors"), ("p50", "p50 ms"),
                    ("p90", "p90 ms"), ("p95", "p95 ms"), ("p99", "p99 ms"), ("max", "max ms"))
# Columns a table shows when one of its rows has them: task streams' times, agent turns' times.
STREAM_COLUMNS = (("ttfe_p95", "first event p95 ms"), ("terminal_p95", "terminal p95 ms"))
AGENT_COLUMNS = (("first_delta_p95", "first delta p95 ms"), ("delta_gap_p95", "delta gap p95 ms"),
                 ("turn_p95", "turn p95 ms"))


def endpoint_columns(rows: Sequence[dict[str, Any]]) -> tuple[tuple[str, str], ...]:
    """The columns of one per-endpoint table: the request columns, then each group a row has."""
    columns: tuple[tuple[str, str], ...] = ENDPOINT_COLUMNS
    for group in (STREAM_COLUMNS, AGENT_COLUMNS):
        if any(group[0][0] in row for row in rows):
            columns += group
    return columns


def endpoint_tables(result: RunResult) -> list[tuple[str, list[dict[str, Any]]]]:
    """(scenario, rows) of every load phase that has a per-endpoint table."""
    out: list[tuple[str, list[dict[str, Any]]]] = []
    for suite in result.suites:
        scenarios = suite.metrics.get("scenarios")
        if suite.name != "load" or not isinstance(scenarios, dict):
            continue
        for name, metrics in scenarios.items():
            rows = metrics.get("endpoints") if isinstance(metrics, dict) else None
            if isinstance(rows, list) and rows:
                out.append((str(name), [r for r in rows if isinstance(r, dict)]))
    return out


def endpoint_cell(row: dict[str, Any], column: str) -> str:
    """One cell of the per-endpoint table: a number as written, or a dash."""
    value = row.get(column)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "—"
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


def without_histograms(metrics: dict[str, Any]) -> dict[str, Any]:
    """`metrics` without the encoded HDR histograms (base64 for `harness compare`, not for people)."""
    out: dict[str, Any] = {}
    for name, value in metrics.items():
        if name == "hdr":
            continue
        out[name] = without_histograms(value) if isinstance(value, dict) else value
    return out
