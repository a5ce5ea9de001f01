"""The contract's own generated requests, for the `contract_mix` load scenario.

Generated once, in the harness process, by schemathesis from contracts/openapi.yaml (valid
requests only, seeded), then replayed by the load users at load. Operations that need a
resource only the run creates (an upload token, a file's name) or that hold a connection open
(streams) are left out; a task id in a path becomes one of the user's own tasks at replay.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.contract import contracts_dir

# Operations the scenario replays, and the history channel each is recorded on.
CHANNELS = {
    "POST /apps/run": "run", "GET /tasks": "list", "GET /tasks/{id}": "get",
    "GET /tasks/{id}/status": "status", "POST /tasks/{id}/cancel": "cancel",
    "DELETE /tasks/{id}": "delete", "POST /files": "files",
}
PER_OPERATION = 12


def generate_cases(seed: int, per_operation: int = PER_OPERATION,
                   schema_path: Path | None = None) -> list[dict[str, Any]]:
    """Up to `per_operation` valid requests for each replayed operation, the same for a seed."""
    import schemathesis

    schema = schemathesis.openapi.from_path(str(schema_path or contracts_dir() / "openapi.yaml"))
    cases: list[dict[str, Any]] = []
    for result in schema.get_all_operations():
        # An operation schemathesis cannot read raises here (our own contract: a bug, not input).
        operation = result.ok()  # type: ignore[union-attr]
        name = f"{operation.method.upper()} {operation.path}"
        if name not in CHANNELS:
            continue
        cases.extend(_draw(operation.as_strategy(), name, seed, per_operation))
    return cases


def _draw(strategy: Any, name: str, seed: int, count: int) -> list[dict[str, Any]]:
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as with_seed

    drawn: list[dict[str, Any]] = []

    @with_seed(seed)
    @settings(max_examples=count, database=None, phases=[Phase.generate], deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(case: Any) -> None:
        drawn.append({"operation": name, "method": case.method.upper(), "path": case.formatted_path,
                      "query": dict(case.query or {}),
                      "body": None if _is_unset(case.body) else case.body})

    collect()
    return drawn[:count]


def _is_unset(value: Any) -> bool:
    return type(value).__name__ == "NotSet"
