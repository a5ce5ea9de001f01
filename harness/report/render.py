"""Render a run folder: results.json (+ the history) -> summary.md, junit.xml, index.html.

`render_run(run_dir)` works from the files alone (what `harness report RUN_DIR` calls);
`render_result(result, run_dir, secrets)` writes results.json first, then renders from it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from harness.contract import Lifecycle, contracts_dir, load_lifecycle
from harness.findings import RunResult
from harness.history import history_in, read_history
from harness.redaction import redact
from harness.report.charts import all_charts
from harness.report.har import failures_har
from harness.report.junit import render_junit
from harness.report.page import render_page
from harness.report.results import read_results, write_results
from harness.report.stats import collect
from harness.report.summary import render_summary

OUTPUTS = ("summary.md", "junit.xml", "index.html")
HAR_FILE = "failures.har"  # written when the run has findings


def lifecycle_of(result: RunResult) -> Lifecycle | None:
    """The lifecycle the run was checked against: `settings["lifecycle"]` names it ("sdk" is
    contracts/lifecycle.yaml, "docs" is contracts/lifecycle-docs.yaml); else the default one.
    None when no contract can be loaded (the page still renders; the chart says it cannot judge).
    """
    name = result.settings.get("lifecycle")
    try:
        default = load_lifecycle()
    except (OSError, ValueError):
        default = None
    if isinstance(name, str) and (default is None or default.name != name):
        candidate = contracts_dir() / f"lifecycle-{name}.yaml"
        try:
            if candidate.is_file():
                named = load_lifecycle(candidate)
                if named.name == name:
                    return named
        except (OSError, ValueError):
            pass
    return default


def _write(path: Path, text: str) -> Path:
    """Write through a temporary file so a re-render never leaves a half-written output."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
    return path


def render_outputs(result: RunResult, run_dir: Path, secrets_to_hide: Sequence[str] = (),
                   lifecycle: Lifecycle | None = None) -> list[Path]:
    """Write summary.md, junit.xml and index.html for `result` into `run_dir`.

    Charts come from the run's history (`observations.jsonl` or `.gz`) when it exists. Every
    output is scrubbed of `secrets_to_hide` as a last line of defence (results.json should
    already be clean).
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    lifecycle = lifecycle or lifecycle_of(result)
    stats = collect(history_in(run_dir), lifecycle.terminal if lifecycle else ())
    bands = [(s.name, s.started, s.ended) for s in result.suites
             if s.started is not None and s.ended is not None]
    charts = all_charts(stats, lifecycle, bands)
    texts = {
        "summary.md": render_summary(result, str(run_dir / "index.html")),
        "junit.xml": render_junit(result),
        "index.html": render_page(result, stats, charts),
    }
    if result.findings:
        history = history_in(run_dir)
        har = failures_har(result, read_history(history) if history.is_file() else None)
        texts[HAR_FILE] = json.dumps(har, indent=1, ensure_ascii=False, default=str)
    return [_write(run_dir / name, redact(text, secrets_to_hide)) for name, text in texts.items()]


def render_run(run_dir: Path, secrets_to_hide: Sequence[str] = (),
               lifecycle: Lifecycle | None = None) -> list[Path]:
    """Re-render a run folder from its files; returns the paths written.

    Raises FileNotFoundError when `run_dir` has no results.json, and
    `harness.report.results.ResultsError` when it cannot be read.
    """
    path = run_dir / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no results.json here; is {run_dir} a run folder?")
    return render_outputs(read_results(path), run_dir, secrets_to_hide, lifecycle)


def render_result(result: RunResult, run_dir: Path, secrets_to_hide: Sequence[str] = (),
                  lifecycle: Lifecycle | None = None) -> list[Path]:
    """Write results.json (secrets removed) and render the rest from it, as a re-render would."""
    results_path = write_results(result, run_dir, list(secrets_to_hide))
    return [results_path, *render_run(run_dir, secrets_to_hide, lifecycle)]
