"""The process exit codes of every `harness` command, in one place."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """What a `harness` command's exit status means (README, `harness --help`)."""

    OK = 0
    FINDINGS = 1  # findings at or above --fail-on
    USAGE = 2  # usage, configuration or preflight (a refused key, not the API's root)
    UNREACHABLE = 3
    CRASHED = 4  # a suite could not finish (it raised, or its child process failed)
    INTERRUPTED = 130  # Ctrl-C: children stopped, the partial run folder written and rendered


EPILOG = ("Exit codes: 0 clean, 1 findings at or above --fail-on, 2 usage, configuration or "
          "preflight error, 3 target unreachable, 4 a suite could not finish, 130 interrupted.")
