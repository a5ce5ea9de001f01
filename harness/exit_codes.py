"""The process exit codes of every `harness` command, in one place."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """0 clean, 1 findings, 2 usage or config error, 3 target unreachable."""

    OK = 0
    FINDINGS = 1
    USAGE = 2
    UNREACHABLE = 3


EPILOG = "Exit codes: 0 clean, 1 findings, 2 usage or config error, 3 target unreachable."
