"""`harness load` options: the flags, their value types, and the options object they fill."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.argtypes import duration_arg, positive_float, positive_int, rate_arg
from harness.checks.thresholds import ThresholdError, parse_threshold
from harness.settings import Settings
from harness.suites.load.scenarios import SCENARIOS, resolve


@dataclass
class LoadOptions:
    """`harness load` options (None: take the run's settings)."""

    scenarios: list[str] = field(default_factory=lambda: ["mixed"])
    users: int = 10
    spawn_rate: float = 10.0
    duration_s: float = 30.0
    arrival_rate: float | None = None  # iterations per second (open model)
    processes: int = 1  # processes on this machine that run users (1: no master/worker)
    thresholds: list[str] = field(default_factory=list)
    deadline_s: float | None = None
    max_tasks: int | None = None
    poll_interval_s: float | None = None
    allow_hosts: list[str] = field(default_factory=list)
    limit_groups: list[str] = field(default_factory=list)  # at/over-limit lanes; empty: every group
    master: bool = False  # wait for workers from other machines
    master_bind_host: str = "127.0.0.1"  # Locust's port has no authentication: opt in to a network
    master_port: int = 5557
    expect_workers: int = 1  # with master: workers from other machines to wait for
    worker_wait_s: float = 120.0
    heartbeat_bound_s: float | None = 15.0
    apps: dict[str, dict[str, Any]] | None = None  # scenario -> run body; None: the reference apps
    apps_builtin: bool = True
    config: Path | None = None  # the run's settings file: the load processes read it too
    seed: int | None = None  # contract_mix: the seed its requests are generated with


    @classmethod
    def from_settings(cls, settings: Settings) -> LoadOptions:
        """The options the run's settings give (flags, HARNESS_* variables and the file merged)."""
        return cls(scenarios=list(settings.scenarios), users=settings.users,
                   spawn_rate=settings.spawn_rate, duration_s=settings.duration,
                   arrival_rate=settings.arrival_rate, processes=settings.processes,
                   thresholds=list(settings.thresholds), deadline_s=settings.deadline,
                   max_tasks=settings.max_tasks, poll_interval_s=settings.poll_interval,
                   allow_hosts=list(settings.allow_hosts),
                   limit_groups=list(dict.fromkeys(settings.limit_groups)), master=settings.master,
                   master_bind_host=settings.master_bind, master_port=settings.master_port,
                   expect_workers=settings.expect_workers, config=settings.config, seed=settings.seed)


def threshold_arg(text: str) -> str:
    """argparse type: a threshold expression, checked now (a typo is a usage error, exit 2)."""
    try:
        parse_threshold(text)
    except ThresholdError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def scenario_arg(text: str) -> str:
    try:
        return resolve(text).name
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_load_arguments(parser: argparse.ArgumentParser, standalone: bool = True) -> None:
    """The `harness load` options; `harness check` gets them without the worker mode."""
    group = parser.add_argument_group("load options")
    group.add_argument("--scenario", action="append", dest="scenarios", type=scenario_arg,
                       metavar="NAME", help=f"repeatable: {', '.join(SCENARIOS)} (default mixed); "
                       "phases run one after the other, over_limit last")
    group.add_argument("--users", type=positive_int, metavar="N",
                       help="concurrent users per phase (default 10; the pool in the open model)")
    group.add_argument("--spawn-rate", type=positive_float, dest="spawn_rate", metavar="R",
                       help="users started per second (default 10)")
    group.add_argument("--duration", type=duration_arg, metavar="60s",
                       help="length of each phase (default 30s)")
    group.add_argument("--arrival-rate", type=rate_arg, dest="arrival_rate", metavar="R/s",
                       help="open model: iterations started per second whatever the latency; "
                       "latencies count from the intended start; late iterations are dropped "
                       "and counted")
    group.add_argument("--poll-interval", type=duration_arg, dest="poll_interval", metavar="S",
                       help="seconds between a user's polls (default: from the read budget)")
    group.add_argument("--processes", type=positive_int, metavar="N",
                       help="processes on this machine: 1 (default) runs users in one process; "
                       "N > 1 runs a Locust master and N-1 local workers")
    group.add_argument("--threshold", action="append", dest="thresholds", type=threshold_arg,
                       metavar="EXPR", help='repeatable SLO gate, e.g. "get_task.p95<200ms", '
                       '"errors<0.1%%", "run.rps>=1.5" (also [thresholds] in harness.toml)')
    group.add_argument("--limit-group", action="append", dest="limit_groups", metavar="GROUP",
                       choices=["run", "get", "upload"],
                       help="repeatable: the rate-limit groups at_limit and over_limit drive (default "
                       "all three; leave out run on a real target: every run slot is a billable task)")
    group.add_argument("--master", action="store_true", default=None,
                       help="also wait for workers from other machines (--expect-workers)")
    group.add_argument("--expect-workers", type=positive_int, dest="expect_workers", metavar="N",
                       help="with --master: workers from other machines to wait for (default 1)")
    group.add_argument("--master-bind", dest="master_bind", metavar="HOST",
                       help="with --master: interface to listen on (default 127.0.0.1: give a private "
                       "interface, e.g. 10.0.0.5 or 0.0.0.0 in a container, for workers on other machines)")
    group.add_argument("--master-port", type=positive_int, dest="master_port", metavar="P",
                       help="with --master / --worker: the master's port (default 5557)")
    if not standalone:
        return
    group.add_argument("--worker", action="store_true",
                       help="run Locust workers for a master elsewhere (--master-host); the "
                       "master sends the target and the phases, keys come from this machine")
    group.add_argument("--master-host", dest="master_host", metavar="H",
                       help="with --worker: the master's host")
