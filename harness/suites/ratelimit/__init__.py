"""The rate-limit suite: each group driven to its limit and judged against contracts/limits.yaml."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from harness.findings import SuiteResult
from harness.settings import RATE_GROUPS, Settings
from harness.suites.base import Context, Suite

GROUPS = RATE_GROUPS


@dataclass(frozen=True)
class RateLimitFlags:
    groups: list[str] = field(default_factory=lambda: list(GROUPS))
    discover: bool = False


class RateLimitSuite(Suite):
    name = "ratelimit"
    deadline_check = "RL-DEADLINE"
    help = ("measure each rate-limit group (run, get, upload) against contracts/limits.yaml: limits, "
            "headers, 429s, isolation")

    def add_arguments(self, parser: argparse.ArgumentParser, standalone: bool) -> None:
        group = parser.add_argument_group("ratelimit options")
        group.add_argument("--group", action="append", dest="groups", choices=GROUPS,
                           help="probe only this group (repeatable; default: all three, at once)")
        group.add_argument("--discover", action="store_true", default=None,
                           help="infer each group's limit (X-RateLimit-Limit) and the window (two "
                           "consecutive Reset values), judge against those, report them against "
                           "the contract")

    def options(self, settings: Settings) -> RateLimitFlags:
        return RateLimitFlags(groups=list(settings.groups or GROUPS), discover=settings.discover)

    def all_checks(self) -> tuple[str, ...]:
        from harness.checks.ratelimit import CHECKS

        return tuple(CHECKS)

    def run(self, ctx: Context, options: RateLimitFlags | None) -> SuiteResult:
        from harness.suites.ratelimit.options import RateLimitOptions
        from harness.suites.ratelimit.run import run_ratelimit

        flags = options or RateLimitFlags()
        quick = ctx.settings.profile.get("quick")
        groups = flags.groups if quick is not None else [g for g in flags.groups if g != "run"]
        if not groups:
            return SuiteResult(name=self.name, status="skipped",
                               error="the profile maps no 'quick' app for the run group's requests")
        rl_options = RateLimitOptions(groups=groups, discover=flags.discover, max_tasks=ctx.tasks_left)
        if quick is not None:
            rl_options.run_body = quick.body()
        result = run_ratelimit(ctx.base_url, ctx.keys, ctx.limits, ctx.history_path, rl_options,
                               ctx.progress)
        if quick is None and "run" in flags.groups:
            result.metrics.setdefault("skipped_groups", {})["run"] = "the profile maps no 'quick' app"
        return result


SUITE = RateLimitSuite()
