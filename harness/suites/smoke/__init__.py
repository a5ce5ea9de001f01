"""The smoke suite: one pass over every documented promise, a task of each kind."""

from __future__ import annotations

from typing import Any

from harness.findings import SuiteResult
from harness.suites.base import Context, Suite


class SmokeSuite(Suite):
    name = "smoke"
    deadline_check = "ST-DEADLINE"
    help = "every app through run, poll, stream, upload and cancel, with the basic promises checked"

    def all_checks(self) -> tuple[str, ...]:
        from harness.suites.smoke.run import CHECKS

        return tuple(CHECKS)

    def judged_something(self, result: SuiteResult) -> bool:
        return int(result.metrics.get("tasks_created", 0)) > 0

    def run(self, ctx: Context, options: Any) -> SuiteResult:
        from harness.suites.smoke.run import SmokeOptions, run_smoke

        return run_smoke(ctx.base_url, ctx.keys, ctx.lifecycle, ctx.limits,
                         SmokeOptions(deadline_s=ctx.settings.deadline, profile=ctx.settings.profile,
                                      history=ctx.history_path),
                         progress=ctx.progress)


SUITE = SmokeSuite()
