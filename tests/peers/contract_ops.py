"""How many operations the contract has (the peer tools must see, and reach, every one)."""

from __future__ import annotations

from pathlib import Path

import yaml

CONTRACT = Path(__file__).resolve().parents[2] / "contracts" / "openapi.yaml"
METHODS = ("get", "put", "post", "delete", "patch")


def operation_names() -> list[str]:
    """"METHOD /path" of every operation of the contract."""
    paths = yaml.safe_load(CONTRACT.read_text())["paths"]
    return [f"{method.upper()} {path}" for path, item in paths.items() for method in METHODS
            if method in (item or {})]


def operation_count() -> int:
    return len(operation_names())
