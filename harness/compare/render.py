"""compare.md and compare.json of a comparison."""

from __future__ import annotations

import json
from pathlib import Path

from harness.compare.judge import Comparison, StatChange

_MARK = {"regressed": "❌ regressed", "improved": "✅ improved", "unchanged": "unchanged",
         "insufficient data": "insufficient data", "new": "new", "gone": "gone"}


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:g}"


def _percent(change: float | None) -> str:
    return "—" if change is None else f"{change * 100:+.1f} %"


def _row(s: StatChange) -> str:
    return (f"| `{s.scenario}` | `{s.endpoint}` | {s.stat} | {_number(s.baseline)} | {_number(s.new)} | "
            f"{_percent(s.change)} | {_MARK[s.verdict]} | {s.gate or '—'} |")


def render_markdown(comparison: Comparison) -> str:
    """The Markdown report: the verdict, the regressions first, then every number that moved."""
    verdict = "❌ regressed" if comparison.regressed else "✅ no regression"
    lines = [f"## Harness compare: {verdict}", "",
             f"Baseline `{comparison.baseline_run}` → new `{comparison.new_run}`. Latencies in ms; a "
             "latency verdict needs the change to exceed the gate beyond both runs' 99 % confidence "
             "intervals (docs/compare.md).", ""]
    header = ["| Scenario | Endpoint | Stat | Baseline | New | Change | Verdict | Gate |",
              "|---|---|---|--:|--:|--:|---|---|"]
    moved = [s for s in comparison.stats if s.verdict != "unchanged"]
    if comparison.regressions:
        lines += ["### Regressions", "", *header, *(_row(s) for s in comparison.regressions), ""]
    if comparison.broken_checks:
        lines += ["### Checks that broke", "", "| Check | Suite | Baseline | New |", "|---|---|---|---|"]
        lines += [f"| `{c.check}` | {c.suite} | {c.baseline} | {c.new} |" for c in comparison.broken_checks]
        lines.append("")
    other_checks = [c for c in comparison.checks if c not in comparison.broken_checks]
    if other_checks:
        lines += ["### Other check changes", "", "| Check | Suite | Baseline | New |", "|---|---|---|---|"]
        lines += [f"| `{c.check}` | {c.suite} | {c.baseline} | {c.new} |" for c in other_checks]
        lines.append("")
    if comparison.new_findings or comparison.fixed_findings:
        lines += ["### Findings", ""]
        lines += [f"- new: `{check}`, {count} finding(s)" for check, count in comparison.new_findings.items()]
        lines += [f"- fixed: `{check}` ({count} finding(s) in the baseline)"
                  for check, count in comparison.fixed_findings.items()]
        lines.append("")
    lines += ["### Every number that moved" if moved else "### Numbers", ""]
    shown = moved or comparison.stats
    lines += [*header, *(_row(s) for s in shown)] if shown else ["No load numbers in common."]
    lines.append("")
    lines += [f"Note: {note}" for note in comparison.notes]
    return "\n".join(lines).rstrip() + "\n"


def write_comparison(comparison: Comparison, folder: Path) -> list[Path]:
    """Write compare.md and compare.json into `folder`; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    md, js = folder / "compare.md", folder / "compare.json"
    md.write_text(render_markdown(comparison), encoding="utf-8")
    js.write_text(json.dumps(comparison.to_json(), indent=1) + "\n", encoding="utf-8")
    return [md, js]
