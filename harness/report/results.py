"""results.json (schema_version 1): the machine-readable record of a run."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.findings import Finding, RunResult, SuiteResult
from harness.redaction import redact

SCHEMA_VERSION = 1
# The JSON Schema (draft 2020-12) of results.json; docs/results-schema.md describes each field.
SCHEMA_PATH = Path(__file__).with_name("results.schema.json")


def new_run_id() -> str:
    """Sortable and unique: UTC time plus a short random suffix."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def now_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def write_results(result: RunResult, run_dir: Path, secrets_to_hide: list[str]) -> Path:
    """Write results.json, refusing to write any of `secrets_to_hide`."""
    run_dir.mkdir(parents=True, exist_ok=True)
    text = redact(json.dumps(result.to_json_dict(), indent=2, sort_keys=False), secrets_to_hide)
    path = run_dir / "results.json"
    path.write_text(text + "\n")
    return path


class ResultsError(ValueError):
    """A results.json that this version of the harness cannot read."""


def results_from_dict(data: dict[str, Any]) -> RunResult:
    """The RunResult that `RunResult.to_json_dict()` produced `data` from (findings back in suites).

    A finding whose suite is not listed gets a placeholder suite (status "failed") so no finding
    is lost.
    """
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ResultsError(f"unsupported results schema_version {version!r} "
                           f"(this harness reads {SCHEMA_VERSION})")
    suites_data = data.get("suites") or {}
    if not isinstance(suites_data, dict):
        raise ResultsError("`suites` must be an object of suite name -> suite")
    suites: dict[str, SuiteResult] = {}
    for name, body in suites_data.items():
        suites[name] = SuiteResult.model_validate({**body, "name": name, "findings": []})
    for raw in data.get("findings") or []:
        finding = Finding.model_validate(raw)
        suite = suites.get(finding.suite)
        if suite is None:
            suite = suites[finding.suite] = SuiteResult(name=finding.suite, status="failed")
        suite.findings.append(finding)
    header = {k: v for k, v in data.items() if k not in ("suites", "findings")}
    return RunResult.model_validate({**header, "suites": list(suites.values())})


def read_results(path: Path) -> RunResult:
    """Read a results.json written by `write_results` back into a RunResult."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ResultsError(f"{path}: not JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ResultsError(f"{path}: expected a JSON object")
    try:
        return results_from_dict(data)
    except ResultsError as exc:
        raise ResultsError(f"{path}: {exc}") from exc
    except ValueError as exc:  # pydantic.ValidationError is a ValueError
        raise ResultsError(f"{path}: not a results.json of schema_version 1 ({exc})") from exc
