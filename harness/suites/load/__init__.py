"""The load suite: Locust scenarios, HDR metrics, pacing, and the headless runner.

Importing this package does not import Locust (and so does not monkey-patch the process with
gevent); only `users`, `session`, `master` and `worker` do, and those run in their own processes
(or under `locust -f`).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Any

from harness.findings import SuiteResult
from harness.profile import Profile
from harness.settings import DEFAULT_TOML, NO_KEY, ConfigError, Settings
from harness.suites.base import Context, Suite
from harness.suites.load.options import LoadOptions, add_load_arguments

DEFAULT_MASTER_PORT = 5557


def scenario_apps(profile: Profile) -> tuple[dict[str, dict[str, Any]] | None, bool]:
    """Each scenario's run body from the profile (None: the reference apps), and whether built in."""
    if profile.builtin:
        return None, True
    quick, file = profile.get("quick"), profile.get("file")
    apps = {name: quick.body() for name in ("run_wait", "poll", "sse", "limit")} if quick else {}
    if file is not None and file.takes_file:
        apps["upload"] = file.body()
    return apps, False


class LoadSuite(Suite):
    name = "load"
    help = "run the Locust scenarios headless, check the merged history and the SLO thresholds"

    def add_arguments(self, parser: argparse.ArgumentParser, standalone: bool) -> None:
        add_load_arguments(parser, standalone)

    def options(self, args: argparse.Namespace) -> LoadOptions:
        return LoadOptions.from_namespace(args)

    def standalone(self, args: argparse.Namespace, settings: Settings) -> int | None:
        if not getattr(args, "worker", False):
            return None
        from harness.suites.load.run import run_worker

        if not args.master_host:
            raise ConfigError("--worker needs --master-host")
        if not settings.api_keys:
            raise ConfigError(NO_KEY)
        return run_worker(args.master_host, args.master_port or DEFAULT_MASTER_PORT, settings.api_keys,
                          args.processes or 1, settings)

    def all_checks(self) -> tuple[str, ...]:
        from harness.suites.load.analysis import CHECKS

        return tuple(CHECKS)

    def run(self, ctx: Context, options: LoadOptions | None) -> SuiteResult:
        from harness.checks.thresholds import ThresholdError, thresholds_from_toml
        from harness.suites.load.run import run_load

        options = options or LoadOptions()
        if ctx.settings.profile.get("quick") is None:
            return SuiteResult(name=self.name, status="skipped", error="the profile maps no 'quick' app "
                               "([apps.quick] in harness.toml): every load scenario runs it")
        thresholds = list(options.thresholds)
        if options.toml_thresholds:
            try:
                thresholds += thresholds_from_toml(ctx.settings.config or DEFAULT_TOML)
            except ThresholdError as exc:
                return SuiteResult(name=self.name, status="error", error=str(exc))
        budget = ctx.tasks_left if options.max_tasks is None else min(options.max_tasks, ctx.tasks_left)
        apps, builtin = scenario_apps(ctx.settings.profile)
        options = replace(options, thresholds=thresholds, max_tasks=budget, apps=apps, apps_builtin=builtin,
                          deadline_s=options.deadline_s or ctx.settings.deadline,
                          allow_hosts=sorted({*options.allow_hosts, *ctx.settings.allow_hosts}))
        return run_load(ctx.base_url, ctx.keys, ctx.lifecycle, ctx.limits, ctx.run_dir, options,
                        ctx.progress)


SUITE = LoadSuite()
