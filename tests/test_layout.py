"""The shape of harness/: no import cycles, sans-I/O rules, and every check id documented."""

from __future__ import annotations

import ast
import importlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "harness"
# What a rule or a history record must not reach for, directly or through harness modules.
FORBIDDEN = ("socket", "ssl", "http", "httpx", "requests", "urllib.request", "gevent", "geventhttpclient",
             "asyncio", "locust", "schemathesis", "starlette", "uvicorn", "subprocess")
SANS_IO = ("harness.checks", "harness.history")
CHECK_ID = re.compile(r"\b((?:ST|CT|LC|RL|LD|AG)-[A-Z0-9]+(?:-[A-Z0-9]+)*)\b")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(path: Path, module_level_only: bool) -> Iterator[tuple[str, int]]:
    """(imported module, line) of every import; relative imports resolved."""
    tree = ast.parse(path.read_text(), str(path))
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    if module_level_only:  # also the bodies of module-level if/try (TYPE_CHECKING, fallbacks)
        nodes = [n for top in tree.body for n in ast.walk(top)
                 if not isinstance(top, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)]
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = _module_name(path).split(".")
                if path.name != "__init__.py":
                    package = package[:-1]
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            yield base, node.lineno
            for alias in node.names:  # `from harness.x import y` where y is a module
                if f"{base}.{alias.name}" in MODULES:
                    yield f"{base}.{alias.name}", node.lineno


def _internal(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of `graph` (module -> modules it imports), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for module in sorted(graph):
        if module not in state and (found := visit(module)):
            return found
    return None


def test_no_import_cycles_inside_harness() -> None:
    graph = {m: {t for name, _ in _imports(p, True) if (t := _internal(name)) and t != m}
             for m, p in MODULES.items()}
    assert graph["harness.runner"] >= {"harness.suites.registry", "harness.suites.base"}
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_one() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set(), "c": {"a"}}) is None


def _reach(module: str) -> dict[str, tuple[str, int]]:
    """Every module `module` can import (at any depth, lazy imports included): name -> (by, line)."""
    seen: dict[str, tuple[str, int]] = {}
    todo = [module]
    done: set[str] = set()
    while todo:
        current = todo.pop()
        if current in done:
            continue
        done.add(current)
        for name, line in _imports(MODULES[current], False):
            seen.setdefault(name, (current, line))
            inner = _internal(name)
            if inner is not None and inner not in done:
                todo.append(inner)
    return seen


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith(SANS_IO)))
def test_rules_and_records_do_no_io(module: str) -> None:
    for name, (by, line) in _reach(module).items():
        bad = next((f for f in FORBIDDEN if name == f or name.startswith(f + ".")), None)
        assert bad is None, f"{module} reaches {name} ({by}, line {line}): rules and records are sans-I/O"
    for path in (MODULES[m] for m in MODULES if m.startswith(SANS_IO)):
        text = path.read_text()
        assert "sleep(" not in text, f"{path}: no sleeps in rules or records"
    if module.startswith("harness.checks"):
        names = {name for name, _ in _imports(MODULES[module], False)}
        assert "time" not in names, f"{module}: rules take time as an argument, they read no clock"


def test_the_layout_test_sees_a_forbidden_import(tmp_path: Path) -> None:
    """The import walker finds imports in functions and under TYPE_CHECKING, and resolves relatives."""
    probe = PACKAGE / "checks" / "lifecycle.py"
    names = {name for name, _ in _imports(probe, False)}
    assert "harness.contract" in names and "heapq" in names
    fake = tmp_path / "m.py"
    fake.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import httpx\n"
                    "def f():\n    import socket\n")
    assert {n for n, _ in _imports(fake, True)} == {"typing", "httpx"}
    assert {"socket", "httpx"} <= {n for n, _ in _imports(fake, False)}


def _registered_checks() -> set[str]:
    ids: set[str] = set()
    for module in ("harness.suites.smoke.run", "harness.checks.issues", "harness.checks.lifecycle",
                   "harness.checks.ratelimit", "harness.suites.load.analysis", "harness.checks.agents"):
        ids |= set(importlib.import_module(module).CHECKS)
    from harness.suites.registry import SUITES

    return ids | {suite.deadline_check for suite in SUITES.values()}


def test_every_check_id_is_documented_and_every_documented_id_exists() -> None:
    registered = _registered_checks()
    documented = set(CHECK_ID.findall((ROOT / "docs" / "checks.md").read_text()))
    in_code = set()
    for path in MODULES.values():
        in_code |= set(re.findall(r"[\"']((?:ST|CT|LC|RL|LD|AG)-[A-Z0-9]+(?:-[A-Z0-9]+)*)[\"']",
                                  path.read_text()))
    # A literal that is no id must be a prefix the code matches ids with ("CT-SDK").
    strays = {c for c in in_code - registered if not any(r.startswith(c + "-") for r in registered)}
    assert not strays, f"check ids in the code that no suite registers: {sorted(strays)}"
    assert not registered - documented, f"undocumented checks: {sorted(registered - documented)}"
    assert not documented - registered, f"docs/checks.md names checks no suite has: " \
        f"{sorted(documented - registered)}"
    assert len(registered) > 60  # every family found


def test_the_history_file_is_named_in_one_place() -> None:
    """Code names run and worker history files through harness.history, never by a literal."""
    owner = PACKAGE / "history" / "store.py"
    for path in MODULES.values():
        if path == owner:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            literal = re.search(r"[\"']observations(\.w[^\"']*)?\.jsonl[\"']", code)
            assert literal is None, f"{path}:{number}: use harness.history.HISTORY_FILE / worker_history_file"


def test_serve_and_the_parser_import_neither_schemathesis_nor_locust() -> None:
    """`harness serve` (and every --help) builds the parser from the suites' light __init__s."""
    import subprocess
    import sys

    code = ("import sys; from harness.cli import build_parser; build_parser(); import harness.server.app; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'schemathesis', 'hypothesis', 'locust', 'gevent', 'matplotlib', 'jsonschema'}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=ROOT, check=True)
    assert done.stdout.strip() == "[]", done.stdout
