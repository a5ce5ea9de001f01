"""The lifecycle suite: concurrent clients on every channel, and the history they saw, checked;
agent chats held at once beside the tasks, judged with the AG- checks."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from harness.argtypes import non_negative_int, positive_int
from harness.findings import SuiteResult
from harness.settings import Settings
from harness.suites.base import Context, Suite


@dataclass(frozen=True)
class LifecycleFlags:
    clients: int = 8
    tasks: int = 24
    chats: int = 3


class LifecycleSuite(Suite):
    name = "lifecycle"
    deadline_check = "LC-DEADLINE"
    help = "drive tasks through every channel at once and check the history of what every client saw"

    def add_arguments(self, parser: argparse.ArgumentParser, standalone: bool) -> None:
        group = parser.add_argument_group("lifecycle options")
        group.add_argument("--clients", type=positive_int, metavar="N",
                           help="concurrent observers (default 8; HARNESS_CLIENTS)")
        group.add_argument("--tasks", type=positive_int, metavar="N",
                           help="tasks to create (default 24)")
        group.add_argument("--chats", type=non_negative_int, metavar="N",
                           help="agent chats held at once beside the tasks, three turns each "
                                "(default 3; 0: none)")

    def options(self, settings: Settings) -> LifecycleFlags:
        return LifecycleFlags(clients=settings.clients, tasks=settings.tasks, chats=settings.chats)

    def all_checks(self) -> tuple[str, ...]:
        from harness.checks.agents import CHECKS as AG_CHECKS
        from harness.checks.lifecycle import CHECKS

        return (*CHECKS, *AG_CHECKS)

    def judged_something(self, result: SuiteResult) -> bool:
        return int(result.metrics.get("tasks_created", 0)) > 0

    def run(self, ctx: Context, options: LifecycleFlags | None) -> SuiteResult:
        from harness.suites.lifecycle.run import LifecycleOptions, run_lifecycle

        flags = options or LifecycleFlags()
        roles = ("quick", "failing", "setup", "flow", "slow")
        if not any(ctx.settings.profile.get(role) for role in roles):
            return SuiteResult(name=self.name, status="skipped", error="the profile maps none of the "
                               f"apps the lifecycle runs ({', '.join(roles)}; [apps.<role>] in harness.toml)")
        tasks = min(flags.tasks, max(0, ctx.tasks_left - 2))
        if tasks < 1:
            return SuiteResult(name=self.name, status="skipped", error="task budget (--max-tasks) spent")
        return run_lifecycle(ctx.base_url, ctx.keys, ctx.lifecycle, ctx.limits, ctx.history_path,
                             LifecycleOptions(clients=flags.clients, tasks=tasks, seed=ctx.seed,
                                              deadline_s=ctx.settings.deadline,
                                              profile=ctx.settings.profile, chats=flags.chats,
                                              chat_budget=max(0, ctx.tasks_left - 2 - tasks),
                                              out_dir=ctx.run_dir),
                             progress=ctx.progress)


SUITE = LifecycleSuite()
