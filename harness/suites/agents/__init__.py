"""The agents suite: agent conversations (a client tool round trip, a stop, a second key's probes)
judged with the AG- checks."""

from __future__ import annotations

from typing import Any

from harness.findings import SuiteResult
from harness.suites.base import Context, Suite


class AgentsSuite(Suite):
    name = "agents"
    help = "agent chats: a client tool round trip, a stop and another key's probes, with the AG- checks"
    deadline_check = "AG-DEADLINE"

    def all_checks(self) -> tuple[str, ...]:
        from harness.checks.agents import CHECKS

        return tuple(CHECKS)

    def judged_something(self, result: SuiteResult) -> bool:
        return int(result.metrics.get("conversations", 0)) > 0 or bool(result.skipped)

    def run(self, ctx: Context, options: Any) -> SuiteResult:
        from harness.suites.agents.run import AgentsOptions, run_agents

        return run_agents(ctx.base_url, ctx.keys, AgentsOptions(
            deadline_s=ctx.settings.deadline, profile=ctx.settings.profile,
            budget=ctx.tasks_left, out_dir=ctx.run_dir), progress=ctx.progress)


SUITE = AgentsSuite()
