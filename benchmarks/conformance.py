"""Conformance suite speed: a default-depth run against the reference server, cases per second.

The run is what `harness check` does first: a fresh reference server (speed 10, 2 s rate
window, 1 s heartbeats, as self-started by the harness) and `run_conformance` at the default
depth (max_examples 20). Goal from the issue: the default-depth run takes <= 60 s on two cores.
Schemathesis's own cases/s is reported from the suite's metrics (its phases only).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from benchmarks.common import median
from harness.contract import load_lifecycle, load_limits
from harness.net.reference import fresh_keys, reference_server
from harness.suites.contract.run import ConformanceOptions, run_conformance

NAME = "conformance"
GOAL_SECONDS = 60.0
WINDOW = 2.0


@dataclass
class Options:
    rounds: int = 2
    max_examples: int = 20

    @classmethod
    def quick(cls) -> Options:
        return cls(rounds=1, max_examples=5)


def run(options: Options | None = None) -> dict[str, Any]:
    options = options or Options()
    limits = load_limits().model_copy(update={"window_seconds": WINDOW})
    rounds: list[dict[str, Any]] = []
    for _ in range(options.rounds):
        with reference_server(fresh_keys(2), rate_window=WINDOW, speed=10.0,
                              extra_args=["--heartbeat", "1"]) as server:
            started = time.monotonic()
            result = run_conformance(server.url, server.keys, load_lifecycle(), limits,
                                     ConformanceOptions(max_examples=options.max_examples))
            seconds = time.monotonic() - started
        rounds.append({"seconds": round(seconds, 2), "findings": len(result.findings),
                       "cases": result.metrics.get("cases"),
                       "cases_per_s": result.metrics.get("cases_per_s"),
                       "requests": result.metrics.get("requests"),
                       "tasks_created": result.metrics.get("tasks_created")})
    wall = median([r["seconds"] for r in rounds]) or 0.0
    return {
        "name": NAME,
        "rounds": rounds,
        "median_seconds": round(wall, 2),
        "median_cases_per_s": median([float(r["cases_per_s"] or 0) for r in rounds]),
        "goal": {"threshold_s": GOAL_SECONDS, "met": wall <= GOAL_SECONDS,
                 "assessed": options.max_examples == 20},
        "config": {"max_examples": options.max_examples, "rate_window_s": WINDOW, "speed": 10.0},
    }


def markdown(result: dict[str, Any]) -> list[str]:
    goal = result.get("goal", {})
    verdict = ("met" if goal.get("met") else "NOT met") if goal.get("assessed") else "not assessed (--quick)"
    first = (result.get("rounds") or [{}])[0]
    return [
        f"| default-depth run (goal <= {goal.get('threshold_s')} s) | **{result.get('median_seconds')} s** "
        f"({verdict}); rounds {[r['seconds'] for r in result.get('rounds', [])]} |",
        f"| schemathesis cases/s (its phases) | {result.get('median_cases_per_s')} |",
        f"| cases, requests, tasks (first round) | {first.get('cases')}, {first.get('requests')}, "
        f"{first.get('tasks_created')} |",
        f"| findings on the clean server | {[r['findings'] for r in result.get('rounds', [])]} |",
        f"| setup | max_examples {result.get('config', {}).get('max_examples')}, reference server speed 10, "
        f"rate window {WINDOW:g} s |",
    ]
