"""The few facts the server reads from contracts/ (status names, limits): data lives there once."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


def contracts_dir() -> Path:
    """Where contracts/ lives: $HARNESS_CONTRACTS_DIR, else the package's copy (a link in a checkout)."""
    override = os.environ.get("HARNESS_CONTRACTS_DIR")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[1] / "contracts"


@dataclass(frozen=True)
class ServerContract:
    status_names: dict[int, str]
    limits: dict[str, int]
    window_seconds: float
    group_of: dict[str, str]


def load_server_contract(directory: Path | None = None) -> ServerContract:
    base = directory or contracts_dir()
    lifecycle: dict[str, Any] = yaml.safe_load((base / "lifecycle.yaml").read_text())
    limits: dict[str, Any] = yaml.safe_load((base / "limits.yaml").read_text())
    group_of = {op: name for name, group in limits["groups"].items() for op in group["operations"]}
    return ServerContract(
        status_names={int(k): str(v) for k, v in lifecycle["statuses"].items()},
        limits={name: int(group["limit"]) for name, group in limits["groups"].items()},
        window_seconds=float(limits["window_seconds"]),
        group_of=group_of,
    )
