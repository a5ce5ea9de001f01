"""summary.md: one screen of Markdown for a CI step summary or a pull-request comment."""

from __future__ import annotations

from datetime import datetime

from harness.findings import RunResult
from harness.report.common import (
    billable_runs,
    count_by_severity,
    endpoint_cell,
    endpoint_columns,
    endpoint_tables,
    format_duration,
    key_metrics,
    sorted_findings,
    verdict,
)

MAX_FINDINGS = 20
_STATUS_MARK = {"passed": "✅ passed", "failed": "❌ failed", "error": "💥 error", "skipped": "⏭️ skipped"}


def _cell(text: str, limit: int = 160) -> str:
    """Text safe inside a Markdown table cell: one line, no HTML, pipes escaped, bounded."""
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("|", "\\|"))


def _code(text: str, limit: int = 60) -> str:
    text = _cell(text, limit).replace("`", "'")
    return f"`{text}`" if text else ""


def _span(started: str, finished: str | None) -> str:
    if not finished:
        return f"started {started}, unfinished"
    try:
        seconds = (datetime.fromisoformat(finished) - datetime.fromisoformat(started)).total_seconds()
    except ValueError:
        return f"{started} → {finished}"
    return f"{started} → {finished} ({format_duration(max(seconds, 0.0))})"


def render_summary(result: RunResult, report_path: str) -> str:
    """The Markdown text of summary.md; `report_path` is where index.html is."""
    outcome = verdict(result)
    findings = sorted_findings(result)
    counts = count_by_severity(findings)
    if outcome == "passed":
        headline = "✅ passed, no findings"
    else:
        parts = [f"{n} {sev}{'s' if n != 1 else ''}" for sev, n in counts.items() if n]
        noun = "finding" if len(findings) == 1 else "findings"
        detail = f"{len(findings)} {noun} ({', '.join(parts)})" if findings else "no findings"
        headline = ("💥 error, " if outcome == "error" else "❌ failed, ") + detail
    lines = [
        f"## Inference API harness: {headline}",
        "",
        f"Target {_code(result.target, 100)} · run {_code(result.run_id)} · "
        f"{_cell(_span(result.started_at, result.finished_at))} · "
        f"{billable_runs(result):,} billable runs made",
        "",
    ]
    if result.suites:
        lines += ["| Suite | Status | Checks | Findings | Duration | Key metrics |",
                  "|---|---|--:|--:|--:|---|"]
        for suite in result.suites:
            metrics = ", ".join(f"{name}={value}" for name, value in key_metrics(suite.metrics))
            lines.append(f"| {_cell(suite.name)} | {_STATUS_MARK.get(suite.status, suite.status)} | "
                         f"{len(suite.checks)} | {len(suite.findings)} | "
                         f"{format_duration(suite.duration_s)} | {_cell(metrics, 120)} |")
        lines.append("")
        for suite in result.suites:
            if suite.error:
                lines += [f"**{_cell(suite.name)}** could not finish: {_cell(suite.error, 300)}", ""]
    else:
        lines += ["No suite ran.", ""]
    for scenario, rows in endpoint_tables(result):
        columns = endpoint_columns(rows)
        lines += [f"### Load `{_cell(scenario, 40)}` per endpoint", "",
                  "| Endpoint | " + " | ".join(label for _, label in columns) + " |",
                  "|---|" + "--:|" * len(columns)]
        for row in rows:
            cells = " | ".join(endpoint_cell(row, column) for column, _ in columns)
            lines.append(f"| {_code(str(row.get('endpoint', '')))} | {cells} |")
        lines.append("")
    if findings:
        lines += ["### Findings", "", "| Check | Severity | Suite | Task | Message |",
                  "|---|---|---|---|---|"]
        for finding in findings[:MAX_FINDINGS]:
            lines.append(f"| {_code(finding.check)} | {finding.severity} | {_cell(finding.suite)} | "
                         f"{_code(finding.task_id or '') or '—'} | {_cell(finding.message)} |")
        if len(findings) > MAX_FINDINGS:
            lines.append(f"\n… and {len(findings) - MAX_FINDINGS} more in the report.")
        lines.append("")
    lines.append(f"Report: {_code(report_path, 200)} (evidence, repro commands and charts; "
                 "also `results.json`, `junit.xml`).")
    return "\n".join(lines) + "\n"
