"""Conformance suite speed: a default-depth run against the reference server, cases per second.

The run is what `harness check` does first: a fresh reference server (speed 10, 2 s rate
window, 1 s heartbeats, as self-started by the harness: the contract's limits, windows of 2 s)
and `run_conformance` at the default depth (max_examples 20). Goals from the issue: the
default-depth run takes <= 60 s on two cores, and its schemathesis phases (coverage, fuzzing,
stateful) run at least 100 cases/s (the suite's `cases_per_s`: cases / the phases' seconds;
the probes before them are in the run's seconds only). Each round reports where the time went:
the pacer's waits for rate-limit slots and the client process's CPU seconds.
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
GOAL_CASES_PER_S = 100.0
WINDOW = 2.0


@dataclass
class Options:
    rounds: int = 3
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
            started, cpu = time.monotonic(), time.process_time()
            result = run_conformance(server.url, server.keys, load_lifecycle(), limits,
                                     ConformanceOptions(max_examples=options.max_examples))
            seconds, cpu = time.monotonic() - started, time.process_time() - cpu
        rounds.append({"seconds": round(seconds, 2), "findings": len(result.findings),
                       "client_cpu_s": round(cpu, 2),
                       "schemathesis_seconds": result.metrics.get("schemathesis_seconds"),
                       "paced_wait_s": result.metrics.get("paced_wait_s"),
                       "cases": result.metrics.get("cases"),
                       "cases_per_s": result.metrics.get("cases_per_s"),
                       "requests": result.metrics.get("requests"),
                       "tasks_created": result.metrics.get("tasks_created")})
    wall = median([r["seconds"] for r in rounds]) or 0.0
    rates = [float(r["cases_per_s"] or 0) for r in rounds]
    rate = median(rates) or 0.0
    assessed = options.max_examples == 20
    return {
        "name": NAME,
        "rounds": rounds,
        "median_seconds": round(wall, 2),
        "median_cases_per_s": rate,
        "best_cases_per_s": max(rates),
        "goal": {"threshold_s": GOAL_SECONDS, "met": wall <= GOAL_SECONDS, "assessed": assessed},
        "cases_goal": {"metric": "schemathesis cases per second of its phases, median of the rounds",
                       "threshold": GOAL_CASES_PER_S, "rate": rate,
                       "met": rate >= GOAL_CASES_PER_S, "assessed": assessed},
        "config": {"max_examples": options.max_examples, "rate_window_s": WINDOW, "speed": 10.0},
    }


def _verdict(goal: dict[str, Any]) -> str:
    return ("met" if goal.get("met") else "NOT met") if goal.get("assessed") else "not assessed (--quick)"


def markdown(result: dict[str, Any]) -> list[str]:
    goal = result.get("goal", {})
    cases_goal = result.get("cases_goal", {})
    rounds = result.get("rounds", [])
    first = (rounds or [{}])[0]
    return [
        f"| default-depth run (goal <= {goal.get('threshold_s')} s) | **{result.get('median_seconds')} s** "
        f"({_verdict(goal)}); rounds {[r['seconds'] for r in rounds]} |",
        f"| schemathesis cases/s, its phases (goal >= {cases_goal.get('threshold')}) | "
        f"**{result.get('median_cases_per_s')}** median, best {result.get('best_cases_per_s')} "
        f"({_verdict(cases_goal)}); rounds {[r['cases_per_s'] for r in rounds]} |",
        f"| where the time went (rounds) | phases {[r.get('schemathesis_seconds') for r in rounds]} s; "
        f"waits for rate-limit slots {[r.get('paced_wait_s') for r in rounds]} s; client CPU "
        f"{[r.get('client_cpu_s') for r in rounds]} s |",
        f"| cases, requests, tasks (first round) | {first.get('cases')}, {first.get('requests')}, "
        f"{first.get('tasks_created')} |",
        f"| findings on the clean server | {[r['findings'] for r in result.get('rounds', [])]} |",
        f"| setup | max_examples {result.get('config', {}).get('max_examples')}, reference server speed 10, "
        f"rate window {WINDOW:g} s |",
    ]
