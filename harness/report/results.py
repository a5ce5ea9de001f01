"""results.json (schema_version 1): the machine-readable record of a run."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from pathlib import Path

from harness.findings import RunResult


def new_run_id() -> str:
    """Sortable and unique: UTC time plus a short random suffix."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def now_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def write_results(result: RunResult, run_dir: Path, secrets_to_hide: list[str]) -> Path:
    """Write results.json, refusing to write any of `secrets_to_hide`."""
    run_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result.to_json_dict(), indent=2, sort_keys=False)
    for secret in secrets_to_hide:
        if secret and secret in text:
            text = text.replace(secret, "***")
    path = run_dir / "results.json"
    path.write_text(text + "\n")
    return path
