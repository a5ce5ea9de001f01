"""The contract suite: schemathesis against contracts/openapi.yaml plus the probes it lacks."""

from __future__ import annotations

import argparse
from typing import Any

from harness.argtypes import non_negative_int
from harness.findings import SuiteResult
from harness.profile import Profile
from harness.settings import Settings
from harness.suites.base import Context, Suite

DEFAULT_MAX_EXAMPLES = Settings.model_fields["max_examples"].default


def probe_apps(profile: Profile) -> dict[str, dict[str, Any]]:
    """The probes' apps: a multi-phase task, a quick one, a failing one and a long one to cancel."""
    if profile.builtin:
        from harness.suites.contract.probes import ProbeOptions

        return ProbeOptions().apps
    roles = {"multi-phase": "quick", "quick": "quick", "failing": "failing", "long": "slow"}
    return {probe: app.body() for probe, role in roles.items() if (app := profile.get(role)) is not None}


class ContractSuite(Suite):
    name = "contract"
    deadline_check = "CT-DEADLINE"
    help = "check a target against contracts/openapi.yaml (schemathesis + the checks it lacks)"

    def add_arguments(self, parser: argparse.ArgumentParser, standalone: bool) -> None:
        group = parser.add_argument_group("contract options")
        group.add_argument("--max-examples", type=non_negative_int, metavar="N",
                           help="schemathesis examples per operation and mode, and stateful scenarios "
                           f"(default {DEFAULT_MAX_EXAMPLES}; 0 = the suite's probes and rules only)")

    def options(self, settings: Settings) -> int:
        return settings.max_examples

    def all_checks(self) -> tuple[str, ...]:
        from harness.checks.issues import CHECKS

        return tuple(CHECKS)

    def run(self, ctx: Context, options: int | None) -> SuiteResult:
        from harness.suites.contract.run import ConformanceOptions, run_conformance

        max_examples = DEFAULT_MAX_EXAMPLES if options is None else options
        return run_conformance(ctx.base_url, ctx.keys, ctx.lifecycle, ctx.limits, ConformanceOptions(
            max_examples=max_examples, seed=ctx.seed, max_tasks=max(0, ctx.tasks_left),
            apps=probe_apps(ctx.settings.profile), history=ctx.history_path), ctx.progress)


SUITE = ContractSuite()
