"""What a suite is to the runner and the CLI: a name, its arguments, its options, and `run`."""

from __future__ import annotations

import argparse
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.contract import Lifecycle, Limits
from harness.findings import SuiteResult
from harness.history import HISTORY_FILE
from harness.settings import Settings

Progress = Callable[[str], None]


@dataclass
class Context:
    """What every suite gets: the target, the contract, the run folder and the task budget."""

    base_url: str
    keys: list[str]
    lifecycle: Lifecycle
    limits: Limits
    run_dir: Path
    settings: Settings
    progress: Progress
    tasks_left: int
    seed: int | None = None  # the run's --seed: suites that draw at random start from it

    @property
    def history_path(self) -> Path:
        """The run's one history file: every suite that records appends here."""
        return self.run_dir / HISTORY_FILE


class Suite(ABC):
    """One suite. The package's `__init__` holds it and imports nothing heavy: the CLI builds
    its parser from every suite, and `harness serve` must not pay for schemathesis or Locust."""

    name: str
    help: str
    # The check that the suite ended within its deadline (the runner judges it: harness/runner.py).
    deadline_check: str

    def add_arguments(self, parser: argparse.ArgumentParser, standalone: bool) -> None:
        """Add the suite's own flags; `standalone` is True under `harness <name>`."""
        return None

    def options(self, settings: Settings) -> Any:
        """The suite's options, from the run's settings (flags, variables and file merged)."""
        return None

    @abstractmethod
    def all_checks(self) -> tuple[str, ...]:
        """Every check id the suite can run (imported lazily: the parser must stay light)."""

    def judged_something(self, result: SuiteResult) -> bool:
        """Whether a run of the suite saw anything to judge (a green run must have)."""
        return int(result.metrics.get("requests", 0)) > 0

    def standalone(self, args: argparse.Namespace, settings: Settings) -> int | None:
        """A mode of `harness <name>` that is not a run (e.g. a load worker); None: a normal run."""
        return None

    @abstractmethod
    def run(self, ctx: Context, options: Any) -> SuiteResult:
        """Run against `ctx`'s target and return the result; never print, never exit."""
