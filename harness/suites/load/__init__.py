"""The load suite: Locust scenarios, HDR metrics, pacing, and the headless runner.

Importing this package does not import Locust (and so does not monkey-patch the process with
gevent); only `users`, `session`, `master` and `worker` do, and those run in their own processes
(or under `locust -f`).
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from harness.findings import SuiteResult
from harness.settings import NO_KEY, ConfigError, Settings
from harness.suites.base import Context, Suite
from harness.suites.load.options import LoadOptions, add_load_arguments


class LoadSuite(Suite):
    name = "load"
    deadline_check = "LD-DEADLINE"
    help = "run the Locust scenarios headless, check the merged history and the SLO thresholds"

    def add_arguments(self, parser: argparse.ArgumentParser, standalone: bool) -> None:
        add_load_arguments(parser, standalone)

    def options(self, settings: Settings) -> LoadOptions:
        return LoadOptions.from_settings(settings)

    def standalone(self, args: argparse.Namespace, settings: Settings) -> int | None:
        if not getattr(args, "worker", False):
            return None
        from harness.suites.load.run import run_worker

        if not settings.master_host:
            raise ConfigError("--worker needs --master-host (or HARNESS_MASTER_HOST)")
        if not settings.api_keys:
            raise ConfigError(NO_KEY)
        return run_worker(settings.master_host, settings.master_port, settings.api_keys,
                          settings.processes, settings)

    def all_checks(self) -> tuple[str, ...]:
        from harness.suites.load.analysis import CHECKS

        return tuple(CHECKS)

    def run(self, ctx: Context, options: LoadOptions | None) -> SuiteResult:
        from harness.suites.load.run import run_load

        options = options or LoadOptions.from_settings(ctx.settings)
        if ctx.settings.profile.get("quick") is None:
            return SuiteResult(name=self.name, status="skipped", error="the profile maps no 'quick' app "
                               "([apps.quick] in harness.toml): every load scenario runs it")
        budget = ctx.tasks_left if options.max_tasks is None else min(options.max_tasks, ctx.tasks_left)
        from harness.suites.load.config import scenario_apps

        apps, builtin = scenario_apps(ctx.settings.profile)
        options = replace(options, max_tasks=budget, apps=apps, apps_builtin=builtin,
                          deadline_s=options.deadline_s or ctx.settings.deadline,
                          allow_hosts=sorted({*options.allow_hosts, *ctx.settings.allow_hosts}))
        return run_load(ctx.base_url, ctx.keys, ctx.lifecycle, ctx.limits, ctx.run_dir, options,
                        ctx.progress)


SUITE = LoadSuite()
