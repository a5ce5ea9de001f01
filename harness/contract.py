"""Typed views of contracts/ (lifecycle and limits), loaded once per file."""

from __future__ import annotations

import functools
import os
from collections.abc import Hashable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, Field


def contracts_dir() -> Path:
    """Where contracts/ lives: $HARNESS_CONTRACTS_DIR, else the package's copy.

    In a checkout `harness/contracts` is a link to the top-level `contracts/` (the one source);
    a wheel carries the files themselves.
    """
    override = os.environ.get("HARNESS_CONTRACTS_DIR")
    return Path(override) if override else Path(__file__).parent / "contracts"



T = TypeVar("T", bound=Hashable)


def transitive_closure(nodes: Iterable[T], edges: Mapping[T, Iterable[T]]) -> dict[T, frozenset[T]]:
    """Every node reachable from each node along `edges` (one step or more)."""
    closure: dict[T, frozenset[T]] = {}
    for start in nodes:
        seen: set[T] = set()
        stack = list(edges.get(start, []))
        while stack:
            nxt = stack.pop()
            if nxt not in seen:
                seen.add(nxt)
                stack.extend(edges.get(nxt, []))
        closure[start] = frozenset(seen)
    return closure

class Lifecycle(BaseModel):
    """Status codes, the terminal set and the allowed transitions of a task."""

    name: str
    source: str = ""
    statuses: dict[int, str]
    initial: list[int]
    terminal: list[int]
    completed: int
    failed: int
    cancelled: int
    rejected: int | None = None
    cancelling: int | None = None
    setup_phases: list[int] = Field(default_factory=list)
    transitions: dict[int, list[int]]
    # SDK name -> the statuses it takes for a task's end (contracts/lifecycle.yaml).
    client_terminal: dict[str, list[int]] = Field(default_factory=dict)

    def clients_waiting_on(self, status: int) -> list[str]:
        """The SDKs that would go on waiting on a task ended at `status` (it is not terminal to them)."""
        if not self.is_terminal(status):
            return []
        return [name for name, ends in self.client_terminal.items() if status not in ends]

    def is_terminal(self, status: int) -> bool:
        return status in self.terminal

    @functools.cached_property
    def reachable(self) -> dict[int, frozenset[int]]:
        """The transitive closure: every status reachable from each status (skips allowed)."""
        return transitive_closure(self.statuses, self.transitions)

    def may_follow(self, before: int, after: int) -> bool:
        """True if an observer may see `after` after `before` (equal, or reachable)."""
        return before == after or after in self.reachable.get(before, frozenset())

    def label(self, status: int) -> str:
        return f"{status} ({self.statuses.get(status, 'not in the contract')})"


class LimitGroup(BaseModel):
    limit: int
    source: str = ""
    operations: list[str]


class Limits(BaseModel):
    """Per-key rate-limit groups, their window and header names."""

    window_seconds: float
    scope: str
    algorithm: str
    headers: dict[str, str]
    rejected: dict[str, Any]
    groups: dict[str, LimitGroup]
    unlimited: list[str] = Field(default_factory=list)

    def group_of(self, method: str, path_template: str) -> str | None:
        op = f"{method.upper()} {path_template}"
        for name, group in self.groups.items():
            if op in group.operations:
                return name
        return None


class StateMachine(BaseModel):
    """One state machine of the chat lifecycle (a run, a message, a tool invocation)."""

    states: list[str]
    initial: list[str]
    terminal: list[str]
    transitions: dict[str, list[str]]

    @functools.cached_property
    def reachable(self) -> dict[str, frozenset[str]]:
        """Every state reachable from each state (skipping is allowed, going back is not)."""
        return transitive_closure(self.states, self.transitions)

    def may_follow(self, before: str, after: str) -> bool:
        return before == after or after in self.reachable.get(before, frozenset())


class ChatLifecycle(BaseModel):
    """Chat status edges, and the run / message / tool invocation machines (chat-lifecycle.yaml)."""

    name: str
    source: str = ""
    chat: StateMachine
    machines: dict[str, StateMachine]
    python_sdk_active_run_states: list[str]

    @property
    def run(self) -> StateMachine:
        return self.machines["run"]

    @property
    def message(self) -> StateMachine:
        return self.machines["message"]

    @property
    def tool_invocation(self) -> StateMachine:
        return self.machines["tool_invocation"]


def _read(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return data


@functools.cache
def load_lifecycle(path: Path | None = None) -> Lifecycle:
    return Lifecycle.model_validate(_read(path or contracts_dir() / "lifecycle.yaml"))


@functools.cache
def load_limits(path: Path | None = None) -> Limits:
    return Limits.model_validate(_read(path or contracts_dir() / "limits.yaml"))


@functools.cache
def load_chat_lifecycle(path: Path | None = None) -> ChatLifecycle:
    return ChatLifecycle.model_validate(_read(path or contracts_dir() / "chat-lifecycle.yaml"))
