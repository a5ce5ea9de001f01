"""index.html: one self-contained page (inline CSS, JS and SVG; a CSP forbids any fetch)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from html import escape

from harness import __version__
from harness.findings import Finding, RunResult
from harness.report.charts import Chart
from harness.report.common import (
    billable_runs,
    count_by_severity,
    endpoint_cell,
    endpoint_columns,
    endpoint_tables,
    evidence_text,
    findings_by_check,
    format_duration,
    key_metrics,
    sorted_findings,
    verdict,
    without_histograms,
)
from harness.report.results import now_rfc3339
from harness.report.stats import HistoryStats

MAX_FINDINGS = 2000  # rows on the page; results.json has all of them

_CSS = """
:root { --fg:#202124; --muted:#5f6368; --line:#dadce0; --bg:#fff; --soft:#f8f9fa;
  --ok:#188038; --bad:#d93025; --warn:#e37400; --info:#1a73e8; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--fg); background: var(--bg); }
header, main, footer { max-width: 1200px; margin: 0 auto; padding: 0 20px; }
header { padding-top: 18px; }
h1 { font-size: 22px; margin: 0 0 8px; display: flex; gap: 12px; align-items: center; }
h2 { font-size: 18px; margin: 28px 0 10px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 0; }
dl.meta dt { color: var(--muted); } dl.meta dd { margin: 0; overflow-wrap: anywhere; }
nav { margin: 12px 0 0; display: flex; gap: 14px; } nav a { color: var(--info); }
.badge { display: inline-block; padding: 1px 9px; border-radius: 11px; font-size: 12px;
  font-weight: 600; color: #fff; background: var(--muted); vertical-align: middle; white-space: nowrap; }
.passed { background: var(--ok); } .failed, .error-sev { background: var(--bad); }
.error { background: #a50e0e; } .skipped { background: var(--muted); }
.warning { background: var(--warn); } .info { background: var(--info); }
.cards { display: flex; gap: 12px; flex-wrap: wrap; margin: 14px 0 0; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 8px 14px; min-width: 120px; }
.card b { display: block; font-size: 20px; } .card span { color: var(--muted); font-size: 12px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--soft); font-weight: 600; position: sticky; top: 0; }
td.num, th.num { text-align: right; white-space: nowrap; }
code, pre { font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
pre { background: var(--soft); border: 1px solid var(--line); border-radius: 6px; padding: 8px;
  overflow: auto; max-height: 420px; white-space: pre-wrap; overflow-wrap: anywhere; margin: 6px 0; }
details > summary { cursor: pointer; color: var(--info); }
.msg { overflow-wrap: anywhere; }
.muted { color: var(--muted); }
.filters { display: flex; gap: 10px; align-items: center; margin: 0 0 8px; }
.filters input { flex: 1; max-width: 420px; padding: 5px 8px; border: 1px solid var(--line);
  border-radius: 6px; }
.filters select { padding: 5px; border: 1px solid var(--line); border-radius: 6px; }
figure.chart { margin: 0 0 22px; border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; }
figure.chart figcaption { font-weight: 600; margin-bottom: 6px; }
figure.chart svg { max-width: 100%; height: auto; display: block; }
p.note { color: var(--muted); margin: 6px 0 0; font-size: 13px; }
p.nodata { color: var(--muted); font-style: italic; margin: 6px 0; }
.suite-error { color: var(--bad); }
footer { color: var(--muted); font-size: 12px; padding: 24px 20px 30px; }
"""

_JS = """
(function () {
  var input = document.getElementById('finding-filter');
  var severity = document.getElementById('finding-severity');
  var shown = document.getElementById('finding-shown');
  var toggle = document.getElementById('finding-expand');
  if (!input || !severity || !shown) { return; }
  var rows = Array.prototype.slice.call(document.querySelectorAll('#findings-table tbody tr'));
  function apply() {
    var query = input.value.toLowerCase(), wanted = severity.value, count = 0;
    rows.forEach(function (row) {
      var ok = (!wanted || row.getAttribute('data-severity') === wanted) &&
        (!query || row.textContent.toLowerCase().indexOf(query) >= 0);
      row.hidden = !ok;
      if (ok) { count += 1; }
    });
    shown.textContent = String(count);
  }
  input.addEventListener('input', apply);
  severity.addEventListener('change', apply);
  if (toggle) {
    toggle.addEventListener('click', function () {
      var all = document.querySelectorAll('#findings-table details');
      var open = toggle.getAttribute('data-open') !== 'true';
      Array.prototype.forEach.call(all, function (d) { d.open = open; });
      toggle.setAttribute('data-open', open ? 'true' : 'false');
      toggle.textContent = open ? 'Collapse all evidence' : 'Expand all evidence';
    });
  }
})();
"""


def _badge(text: str, css: str | None = None) -> str:
    return f'<span class="badge {escape(css or text)}">{escape(text)}</span>'


def _severity_badge(severity: str) -> str:
    return _badge(severity, "error-sev" if severity == "error" else severity)


def _header(result: RunResult, stats: HistoryStats) -> str:
    outcome = verdict(result)
    findings = result.findings
    counts = count_by_severity(findings)
    rows = [("Target", f"<code>{escape(result.target)}</code>"),
            ("Run", f"<code>{escape(result.run_id)}</code>"),
            ("Started", escape(result.started_at)),
            ("Finished", escape(result.finished_at or "not finished"))]
    meta = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows)
    tasks = billable_runs(result)
    cards = [(str(len(result.suites)), "suites"),
             (str(sum(len(s.checks) for s in result.suites)), "checks"),
             (str(len(findings)), "findings"),
             (f"{counts['error']} / {counts['warning']} / {counts['info']}", "error / warning / info"),
             (f"{stats.observations:,}", "observations"),
             (f"{tasks:,}", "billable runs made")]
    card_html = "".join(f'<div class="card"><b>{escape(v)}</b><span>{escape(k)}</span></div>'
                        for v, k in cards)
    return (f"<header><h1>Inference API harness {_badge(outcome)}</h1>"
            f'<dl class="meta">{meta}</dl><div class="cards">{card_html}</div>'
            '<nav><a href="#suites">Suites</a><a href="#findings">Findings</a>'
            '<a href="#charts">Charts</a><a href="#settings">Settings</a></nav></header>')


def _suites(result: RunResult) -> str:
    if not result.suites:
        return '<section id="suites"><h2>Suites</h2><p class="nodata">No suite ran.</p></section>'
    rows = []
    for suite in result.suites:
        metrics = ", ".join(f"{escape(k)}={escape(v)}" for k, v in key_metrics(suite.metrics))
        full = ""
        if suite.metrics:
            full = ("<details><summary>all metrics</summary><pre>"
                    f"{escape(json.dumps(without_histograms(suite.metrics), indent=2, default=str))}"
                    "</pre></details>")
        error = f'<div class="suite-error">{escape(suite.error)}</div>' if suite.error else ""
        rows.append(f"<tr><td><b>{escape(suite.name)}</b>{error}</td><td>{_badge(suite.status)}</td>"
                    f'<td class="num">{len(suite.checks)}</td><td class="num">{len(suite.findings)}</td>'
                    f'<td class="num">{escape(format_duration(suite.duration_s))}</td>'
                    f"<td>{metrics}{full}</td></tr>")
    checks = []
    for suite in result.suites:
        items = []
        for check, found in findings_by_check(suite).items():
            if found:
                state = _badge(f"{len(found)} finding{'s' if len(found) != 1 else ''}", "failed")
            elif suite.status == "skipped":
                state = _badge("skipped")
            else:
                state = _badge("passed")
            items.append(f"<tr><td><code>{escape(check)}</code></td><td>{state}</td></tr>")
        body = "".join(items) or '<tr><td colspan="2" class="muted">no checks listed</td></tr>'
        is_open = " open" if suite.findings or suite.status == "error" else ""
        checks.append(f"<details{is_open}><summary>{escape(suite.name)}: {len(suite.checks)} checks"
                      f"</summary><table><thead><tr><th>Check</th><th>Result</th></tr></thead>"
                      f"<tbody>{body}</tbody></table></details>")
    return ('<section id="suites"><h2>Suites</h2><table id="suites-table"><thead><tr><th>Suite</th>'
            '<th>Status</th><th class="num">Checks</th><th class="num">Findings</th>'
            '<th class="num">Duration</th><th>Metrics</th></tr></thead><tbody>'
            + "".join(rows) + "</tbody></table><h3>Checks</h3>" + "".join(checks) + "</section>")


def _endpoints(result: RunResult) -> str:
    tables = endpoint_tables(result)
    if not tables:
        return ""
    parts = []
    for scenario, rows in tables:
        columns = endpoint_columns(rows)
        head = "".join(f'<th class="num">{escape(label)}</th>' for _, label in columns)
        body = "".join(
            f"<tr><td><code>{escape(str(row.get('endpoint', '')))}</code></td>"
            + "".join(f'<td class="num">{escape(endpoint_cell(row, c))}</td>' for c, _ in columns)
            + "</tr>" for row in rows)
        parts.append(f"<h3>Scenario <code>{escape(scenario)}</code></h3><table class=\"endpoints\">"
                     f"<thead><tr><th>Endpoint</th>{head}</tr></thead><tbody>{body}</tbody></table>")
    return ('<section id="endpoints"><h2>Load per endpoint</h2><p>Latencies from HDR histograms '
            "(3 significant digits), streams to the response headers; first event and terminal are "
            "the stream's own times; first delta and turn count from the agent message sent, the "
            "delta gap between two deltas of one message.</p>" + "".join(parts) + "</section>")


def _finding_row(finding: Finding) -> str:
    details = ""
    if finding.evidence or finding.repro:
        parts = []
        if finding.evidence:
            parts.append(f"<div>Evidence</div><pre>{escape(evidence_text(finding.evidence))}</pre>")
        if finding.repro:
            parts.append(f'<div>Reproduce</div><pre class="repro">{escape(finding.repro)}</pre>')
        details = f"<details><summary>evidence &amp; repro</summary>{''.join(parts)}</details>"
    task = f"<code>{escape(finding.task_id)}</code>" if finding.task_id else '<span class="muted">—</span>'
    return (f'<tr data-severity="{escape(finding.severity)}"><td>{_severity_badge(finding.severity)}</td>'
            f"<td><code>{escape(finding.check)}</code></td><td>{escape(finding.suite)}</td>"
            f'<td>{task}</td><td class="msg">{escape(finding.message)}{details}</td></tr>')


def _findings(result: RunResult) -> str:
    findings = sorted_findings(result)
    if not findings:
        return ('<section id="findings"><h2>Findings</h2><p class="nodata">No findings: every check '
                "kept its promise.</p></section>")
    shown = findings[:MAX_FINDINGS]
    more = ""
    if len(findings) > len(shown):
        more = (f'<p class="note">{len(findings) - len(shown):,} more findings are in results.json.</p>')
    return (f'<section id="findings"><h2>Findings ({len(findings):,})</h2>'
            '<div class="filters"><input id="finding-filter" type="search" '
            'placeholder="filter: check id, task id, message, evidence…" aria-label="filter findings">'
            '<select id="finding-severity" aria-label="severity"><option value="">all severities</option>'
            '<option value="error">error</option><option value="warning">warning</option>'
            '<option value="info">info</option></select>'
            f'<span class="muted"><span id="finding-shown">{len(shown)}</span> shown</span>'
            '<button id="finding-expand" type="button" data-open="false">Expand all evidence</button></div>'
            '<table id="findings-table"><thead><tr><th>Severity</th><th>Check</th><th>Suite</th>'
            "<th>Task</th><th>Message</th></tr></thead><tbody>"
            + "".join(_finding_row(f) for f in shown) + f"</tbody></table>{more}</section>")


def _charts(charts: Sequence[Chart], stats: HistoryStats) -> str:
    intro = (f"From the history (<code>observations.jsonl.gz</code>): {stats.observations:,} "
             f"observations, {stats.requests:,} requests." if stats.observations else
             "No history (<code>observations.jsonl.gz</code>) in the run folder (or it was empty).")
    if stats.error:
        intro += f' <span class="suite-error">Reading stopped early: {escape(stats.error)}</span>'
    if stats.skipped:
        intro += f" {stats.skipped:,} observations had unusable fields and were skipped."
    figures = []
    for chart in charts:
        body = chart.svg if chart.svg is not None else f'<p class="nodata">{escape(chart.note)}</p>'
        note = f'<p class="note">{escape(chart.note)}</p>' if chart.svg is not None else ""
        figures.append(f'<figure class="chart" id="{escape(chart.id)}" '
                       f'data-has-data="{"true" if chart.svg is not None else "false"}">'
                       f"<figcaption>{escape(chart.title)}</figcaption>{body}{note}</figure>")
    return f'<section id="charts"><h2>Charts</h2><p>{intro}</p>{"".join(figures)}</section>'


def _settings(result: RunResult) -> str:
    text = json.dumps(result.settings, indent=2, default=str) if result.settings else "{}"
    return (f'<section id="settings"><h2>Settings</h2><details><summary>settings of this run '
            f"(API keys are never recorded)</summary><pre>{escape(text)}</pre></details></section>")


def render_page(result: RunResult, stats: HistoryStats, charts: Sequence[Chart]) -> str:
    """The HTML text of index.html."""
    outcome = verdict(result)
    title = f"Harness {outcome}: {result.run_id}"
    csp = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
           "img-src data:; base-uri 'none'; form-action 'none'")
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<link rel="icon" href="data:,">'
            f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
            + _header(result, stats) + "<main>" + _suites(result) + _endpoints(result) + _findings(result)
            + _charts(charts, stats) + _settings(result) + "</main>"
            f"<footer>Rendered by harness {escape(__version__)} at {escape(now_rfc3339())} from "
            "results.json and the history; re-render with <code>harness report RUN_DIR</code>."
            f"</footer><script>{_JS}</script></body></html>\n")

