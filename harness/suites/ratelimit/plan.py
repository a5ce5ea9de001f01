"""How many windows each group needs, and whether the task budget allows them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.suites.ratelimit.options import RateLimitOptions
from harness.suites.ratelimit.session import Session

Progress = Callable[[str], None]


@dataclass
class Plan:
    caps: dict[str, int]  # requests per window of the target
    totals: dict[str, int]  # requests per burst
    billable: int  # runs the suite may create at most


def make_plan(session: Session, discover: bool, declared: dict[str, int], run_windows: int) -> Plan:
    """Request caps per burst, and how many billable runs the whole suite may create."""
    caps: dict[str, int] = {}
    totals: dict[str, int] = {}
    for group in session.groups:
        limit = max(session.limits[group], declared.get(group, 0))
        lanes = len(session.lanes[group])
        if group == "run":
            caps[group] = limit + 2  # one past the limit is enough: every run is billable
            totals[group] = caps[group] * run_windows
        else:
            caps[group] = (2 * limit if discover else limit) + 2 * lanes + 2
            totals[group] = caps[group] * 3
    billable = 0
    if "run" in session.groups:
        billable = (2 if discover else 1) + totals["run"] + (1 if session.key2 else 0) + 1 + \
            (1 if "upload" in session.groups else 0)
    return Plan(caps, totals, billable)


def fit_budget(session: Session, options: RateLimitOptions, declared: dict[str, int], note: Progress,
            metrics: dict[str, Any]) -> Plan | None:
    """The plan that fits the task budget: the run burst may use a second window if it spills,
    or only one; with less budget than that the run group is skipped. None: nothing left to do."""
    budget = options.max_tasks
    for run_windows in (2, 1):
        plan = make_plan(session, options.discover, declared, run_windows)
        if "run" not in session.groups or budget is None or plan.billable <= budget:
            if "run" in session.groups:
                typical = plan.billable - plan.totals["run"] + plan.caps["run"]
                note(f"ratelimit: will create about {typical} billable runs, at most {plan.billable}"
                     f" (run limit {session.limits['run']} per {session.window:g} s window; "
                     f"budget {budget if budget is not None else 'unlimited'})")
            return plan
    note(f"ratelimit: the run group needs {plan.billable} billable runs, more than the {budget} left "
         "(--max-tasks): run group skipped")
    metrics["skipped_groups"]["run"] = f"needs {plan.billable} runs, budget {budget}"
    session.groups.remove("run")
    for lane in session.lanes.pop("run"):
        lane.close()
    lane2 = session.key2.pop("run", None)
    if lane2 is not None:
        lane2.close()
    return make_plan(session, options.discover, declared, 1) if session.groups else None
