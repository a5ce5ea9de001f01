"""`harness load` options: the flags, their value types, and the options object they fill."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, replace
from typing import Any

from harness.argtypes import positive_float, positive_int
from harness.checks.thresholds import ThresholdError, parse_threshold
from harness.suites.load.config import parse_duration, parse_rate
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
    toml_thresholds: bool = True  # also read [thresholds] from harness.toml
    deadline_s: float | None = None
    max_tasks: int | None = None
    poll_interval_s: float | None = None
    allow_hosts: list[str] = field(default_factory=list)
    limit_groups: list[str] = field(default_factory=list)  # at/over-limit lanes; empty: every group
    master: bool = False  # wait for workers from other machines
    master_bind_host: str = "*"
    master_port: int = 5557
    expect_workers: int = 1  # with master: workers from other machines to wait for
    worker_wait_s: float = 120.0
    heartbeat_bound_s: float | None = 15.0
    apps: dict[str, dict[str, Any]] | None = None  # scenario -> run body; None: the reference apps
    apps_builtin: bool = True


    @classmethod
    def from_namespace(cls, args: argparse.Namespace) -> LoadOptions:
        """Fill from the arguments `add_load_arguments` defines (None/missing: the default)."""
        base = cls()
        given = {name: getattr(args, name, None) for name in (
            "users", "spawn_rate", "duration_s", "arrival_rate", "processes", "master",
            "master_bind_host", "master_port", "expect_workers")}
        options = replace(base, **{k: v for k, v in given.items() if v is not None})
        scenarios = getattr(args, "scenarios", None)
        thresholds = getattr(args, "thresholds", None)
        return replace(options, scenarios=list(scenarios) if scenarios else base.scenarios,
                       thresholds=list(thresholds or []),
                       limit_groups=list(dict.fromkeys(getattr(args, "limit_groups", None) or [])))


def duration_arg(text: str) -> float:
    """argparse type: `60`, `60s`, `2m`, `1h30m` -> seconds."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def rate_arg(text: str) -> float:
    """argparse type: `5`, `5/s`, `300/m` -> per second."""
    try:
        return parse_rate(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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
    group.add_argument("--duration", type=duration_arg, dest="duration_s", metavar="60s",
                       help="length of each phase (default 30s)")
    group.add_argument("--arrival-rate", type=rate_arg, dest="arrival_rate", metavar="R/s",
                       help="open model: iterations started per second whatever the latency; "
                       "latencies count from the intended start; late iterations are dropped "
                       "and counted")
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
    group.add_argument("--master-bind", dest="master_bind_host", metavar="HOST",
                       help="with --master: interface to listen on (default all)")
    group.add_argument("--master-port", type=positive_int, dest="master_port", metavar="P",
                       help="with --master / --worker: the master's port (default 5557)")
    if not standalone:
        return
    group.add_argument("--worker", action="store_true",
                       help="run Locust workers for a master elsewhere (--master-host); the "
                       "master sends the target and the phases, keys come from this machine")
    group.add_argument("--master-host", dest="master_host", metavar="H",
                       help="with --worker: the master's host")
