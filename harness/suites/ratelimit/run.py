"""Rate-limit suite: are the contract's limits exactly what the target enforces, per key and group?

Plan (all three groups at once, so the suite takes about one window plus a margin):

1. probe: one request per group (and the key's task and file lists, to compare later) tells
   the target's Reset, i.e. where its current window ends;
2. burst window: just after that boundary, the get and run groups are driven past their limits
   at full speed over several keep-alive connections; the upload group starts the moment they
   are exhausted (so its first request shows whether their exhaustion touched it); as each
   group answers its first 429, a second key sends one request of that group;
3. after Reset: one request per group must be admitted into the fresh window; the upload group
   is exhausted once more and then a get and a run request must still be admitted;
4. the task and file lists are read back: a 429 must not have created anything.

Every request is recorded (send and answer times in monotonic ns, the rate-limit headers) and
judged afterwards by `harness.checks.ratelimit.judge`, which delimits windows by the target's
own Reset values, so the counts need no timing slack. The client is the standard library's
http.client on threads (one connection per thread): ~4,500 requests/s on one core here,
against ~650 for httpx, so a 1,000-request budget fits a 1 s window.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harness.checks.headers import header_int
from harness.checks.ratelimit import (
    CHECKS,
    SUITE,
    Baseline,
    Exchange,
    Window,
    judge,
    observed_limit,
    observed_window,
    reset_problem,
)
from harness.contract import Limits
from harness.findings import Finding, SuiteResult
from harness.net.deadline import check_deadline
from harness.net.lanes import Lane, Target
from harness.settings import is_loopback
from harness.suites.ratelimit import GROUPS
from harness.suites.ratelimit.options import RateLimitOptions
from harness.suites.ratelimit.plan import Plan, fit_budget
from harness.suites.ratelimit.record import write_history
from harness.suites.ratelimit.repro import repro_of
from harness.suites.ratelimit.session import Burst, Session, exchange_data, listed_ids, sleep_until

Progress = Callable[[str], None]


def run_ratelimit(base_url: str, keys: list[str], limits: Limits, history_path: Path | None,
                  options: RateLimitOptions | None = None, progress: Progress | None = None
                  ) -> SuiteResult:
    """Probe every selected group of `limits` against `base_url`; return findings and metrics."""
    options = options or RateLimitOptions()
    note = progress or (lambda _m: None)
    started = time.monotonic()
    groups = [g for g in GROUPS if g in options.groups and g in limits.groups]
    unknown = [g for g in options.groups if g not in limits.groups]
    if unknown or not groups:
        return SuiteResult(name=SUITE, status="error", error=f"unknown rate-limit group(s): "
                           f"{', '.join(unknown) or '(none selected)'}; the contract has "
                           f"{', '.join(limits.groups)}")
    if not keys:
        return SuiteResult(name=SUITE, status="error", error="no API key")
    if limits.algorithm != "fixed_window":
        note(f"ratelimit: the contract's algorithm is {limits.algorithm!r}; the suite judges fixed "
             "windows delimited by the target's Reset values")
    loopback = is_loopback(base_url)
    tolerance = options.clock_tolerance_s if options.clock_tolerance_s is not None else \
        (0.05 if loopback else 1.0)
    lead = 0.02 if loopback else min(tolerance, limits.window_seconds / 20) + 0.02
    session = Session(Target.parse(base_url), keys, limits, options, groups, tolerance, lead)
    metrics: dict[str, Any] = {"window_s": limits.window_seconds, "tolerance_s": tolerance,
                               "start_lead_s": lead, "keys": min(len(keys), 2), "skipped_groups": {}}
    plan = fit_budget(session, options, {}, note, metrics)
    if plan is None:
        for lane in session.all_lanes():
            lane.close()
        return SuiteResult(name=SUITE, status="skipped", metrics=metrics,
                           error="task budget (--max-tasks) too small for the run group",
                           duration_s=round(time.monotonic() - started, 3))
    try:
        findings, more = _drive(session, options, plan, note)
    finally:
        for lane in session.all_lanes():
            lane.close()
    metrics.update(more)
    metrics["window_s"] = session.window
    metrics["contract_window_s"] = limits.window_seconds
    if history_path is not None:
        write_history(session, history_path)
    if metrics.get("stopped"):
        return SuiteResult(name=SUITE, status="skipped", metrics=metrics, error=str(metrics["stopped"]),
                           duration_s=round(time.monotonic() - started, 3))
    return SuiteResult(name=SUITE, status="failed" if findings else "passed",
                       checks=_checks_run(session, options, metrics), metrics=metrics,
                       findings=findings, duration_s=round(time.monotonic() - started, 3))


def _checks_run(session: Session, options: RateLimitOptions, metrics: dict[str, Any]) -> list[str]:
    skip = set()
    if not session.key2:
        skip.add("RL-KEY-ISOLATION")
    if len(session.groups) < 2:
        skip.add("RL-GROUP-ISOLATION")
    if not options.discover:
        skip.add("RL-DISCOVER")
    else:
        skip.add("RL-LIMIT-HEADER")
    if not any(v == "verified" for v in metrics.get("side_effects", {}).values()):
        skip.add("RL-429-SIDE-EFFECT")
    return [c for c in CHECKS if c not in skip]


def _drive(session: Session, options: RateLimitOptions, plan: Plan, note: Progress
           ) -> tuple[list[Finding], dict[str, Any]]:
    groups = session.groups
    first = {g: session.lanes[g][0] for g in groups}
    # 1. probe: where does the current window end? (run first: its task is the get group's target)
    probes: dict[str, Exchange] = {}
    for group in groups:
        probes[group] = session.send(first[group], group, "probe")
    run_probe = probes.get("run")
    task = exchange_data(run_probe) if run_probe is not None and run_probe.admitted else None
    if isinstance(task, dict) and isinstance(task.get("id"), str):
        session.get_path = f"/tasks/{task['id']}"
    listing_lane = first.get("get") or next(iter(first.values()))
    before = _list_back(session, listing_lane)
    declared = {g: v for g, x in probes.items()
                if (v := header_int(x.header(session.names.limit))) is not None and v > 0}
    discovered_window: int | None = None
    boundary = _next_boundary(session, list(probes.values()))
    if options.discover:
        found = _discover_window(session, probes, note)
        if found is not None:
            discovered_window, again = found
            session.window = float(discovered_window)
            probes_now = list(again.values())
        else:
            probes_now = list(probes.values())
        session.limits.update(declared)
        skipped: dict[str, Any] = {"skipped_groups": {}}
        replanned = fit_budget(session, options, declared, note, skipped)
        if replanned is None:
            return [], {**skipped, "discovered_window_s": discovered_window, "tasks_created": sum(
                1 for x in session.exchanges if x.group == "run" and x.admitted),
                "stopped": "task budget (--max-tasks) too small after discovery",
                "requests": len(session.exchanges)}
        plan = replanned
        boundary = _next_boundary(session, probes_now)
    # 2. the burst window
    bursts = {g: Burst(session, g, plan.caps[g], plan.totals[g]) for g in groups}
    wait = boundary + session.lead - time.time()
    note(f"ratelimit: groups {', '.join(groups)}; bursts start at the next window boundary in "
         f"{max(0.0, wait):.2f} s")
    sleep_until(boundary - min(1.0, session.window / 2))
    for lane in session.all_lanes():
        lane.reconnect()
    sleep_until(boundary + session.lead)
    fresh_after = time.monotonic_ns()
    lead_groups = [g for g in ("get", "run") if g in groups]
    threads = [threading.Thread(target=bursts[g].run, daemon=True) for g in lead_groups]
    if "upload" in groups:
        def upload_after() -> None:
            for g in lead_groups:
                bursts[g].done.wait()
            bursts["upload"].run()
        threads.append(threading.Thread(target=upload_after, daemon=True))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # The bursts are bounded by their windows; a deadline that passed meanwhile ends the suite
    # here, before their (cut short) exchanges are judged.
    check_deadline()
    burst_end = max(b.ended_ns for b in bursts.values())
    # 3. after Reset: a fresh window for every group
    phase1 = [x for x in session.exchanges if x.key == "key1" and x.send_ns >= fresh_after]
    after = max(session.window_end(x) for x in phase1) if phase1 else time.time()
    sleep_until(after + session.lead)
    for group in groups:
        session.send(first[group], group, "after-reset")
    if "upload" in groups and len(groups) > 1:
        with session.lock:
            session.exhausted.clear()
        again_burst = Burst(session, "upload", plan.caps["upload"], plan.totals["upload"])
        again_burst.run()
        if again_burst.first_429 is not None:
            for group in ("get", "run"):
                if group in groups:
                    session.send(first[group], group, "follow", ("upload",))
    # 4. read back what exists
    after_lists = _list_back(session, listing_lane)
    baseline = Baseline(limits=dict(session.limits), window_s=session.window,
                        tolerance_s=session.tolerance, fresh_after_ns=fresh_after,
                        names=session.names, problem_code=session.problem_code,
                        expect_limit_header=None if options.discover else dict(session.limits))
    verdict = judge(session.exchanges, baseline, groups)
    findings = verdict.findings
    side, by_429 = _side_effects(session, before, after_lists, findings)
    metrics: dict[str, Any] = {
        "requests": len(session.exchanges),
        # What the task budget is charged: admitted runs, and tasks a 429 created anyway.
        "tasks_created": sum(1 for x in session.exchanges if x.group == "run" and x.admitted) + by_429,
        "tasks_created_by_429": by_429,
        "billable_planned": plan.billable,
        "burst_window_start": round(boundary, 3),
        "burst_s": round((burst_end - fresh_after) / 1e9, 3),
        "windows_by": verdict.modes,
        "group_isolation_pairs": verdict.group_pairs,
        "side_effects": side,
        "groups": {},
    }
    for group in groups:
        burst = bursts[group]
        mine = [x for x in session.exchanges if x.group == group]
        metrics["groups"][group] = {
            "limit": session.limits[group], "sent": len(mine),
            "admitted": sum(1 for x in mine if x.admitted), "refused": sum(1 for x in mine if x.refused),
            "failed": sum(1 for x in mine if not x.answered),
            "burst_requests": burst.sent, "burst_rate_rps": burst.rate,
            "burst_s": round((burst.ended_ns - burst.started_ns) / 1e9, 3),
            "first_429_ms": round((burst.first_429.done_ns - fresh_after) / 1e6, 1)
            if burst.first_429 else None,
            "observed_limit": observed_limit(verdict.windows, "key1", group),
            "declared_limit": declared.get(group),
            "observed_window_s": observed_window(session.exchanges, "key1", group, session.names),
        }
    if options.discover:
        findings += _discover_findings(session, verdict.windows, declared, discovered_window)
        metrics["discovered_window_s"] = discovered_window
    for finding in findings:
        finding.repro = repro_of(session, finding)
    return findings, metrics


def _discover_window(session: Session, probes: dict[str, Exchange], note: Progress
                     ) -> tuple[int, dict[str, Exchange]] | None:
    """The window as the step between two consecutive Reset values, and the second probes.

    The contract's window may be wrong here, so any future Reset up to an hour away is waited
    for; the second probe, sent just after it, lands in the next window.
    """
    reference = probes.get("get") or next(iter(probes.values()))
    first = header_int(reference.header(session.names.reset))
    now = time.time()
    if first is None or not now - session.tolerance < first <= now + 3600:
        note("ratelimit: cannot discover the window: the probe's Reset is not a future epoch second")
        return None
    note(f"ratelimit: discovering the window: waiting {max(0.0, first - now):.1f} s for the next one")
    sleep_until(first + session.lead)
    again = {g: session.send(session.lanes[g][0], g, "probe") for g in session.groups}
    second = header_int(again[reference.group].header(session.names.reset))
    if second is None or second <= first:
        return None
    return second - first, again


def _next_boundary(session: Session, probes: list[Exchange]) -> float:
    """The next window start: the probes' Reset if usable, else the contract's epoch alignment.

    Too close to it (less than the set-up time), the one after is used: the burst window must
    hold none of the probe phase's requests.
    """
    resets = [float(header_int(x.header(session.names.reset)) or 0) for x in probes
              if x.answered and reset_problem(x, session.names, session.window, session.tolerance) is None]
    now = time.time()
    window = session.window
    boundary = min(resets) if resets else (int(now // window) + 1) * window
    while boundary - now < 0.25:
        boundary += window
    return boundary


def _list_back(session: Session, lane: Lane) -> dict[str, Exchange | None]:
    """The key's task list (if runs are probed) and file list (if uploads are), as answered."""
    out: dict[str, Exchange | None] = {}
    if "run" in session.groups:
        out["run"] = session.record(lane.send("GET", "/tasks?limit=1000", None, "get", "verify",
                                              session.names))
    if "upload" in session.groups:
        out["upload"] = session.record(lane.send("GET", "/files", None, "get", "verify", session.names))
    return out


def _side_effects(session: Session, before: dict[str, Exchange | None],
                  after: dict[str, Exchange | None], findings: list[Finding]
                  ) -> tuple[dict[str, str], int]:
    """Per group "verified" or why not, and how many tasks exist that only a 429 can explain."""
    status: dict[str, str] = {}
    tasks_by_429 = 0
    for group, what in (("run", "task"), ("upload", "file")):
        if group not in session.groups:
            continue
        named = session.upload_filename if group == "upload" else None
        old, new = listed_ids(before.get(group), named), listed_ids(after.get(group), named)
        if old is None or new is None:
            got = [x.http if x else None for x in (before.get(group), after.get(group))]
            status[group] = f"unverified: the {what} list answered {got}"
            continue
        status[group] = "verified"
        ours: set[str] = set()
        refused = []
        for x in session.exchanges:
            if x.group != group or x.key != "key1":
                continue
            if x.refused:
                refused.append(x)
            elif x.admitted:
                data = exchange_data(x)
                item = data[0] if isinstance(data, list) and data else data
                if isinstance(item, dict) and "id" in item:
                    ours.add(str(item["id"]))
        extra = sorted(new - old - ours)
        if group == "run":
            tasks_by_429 = len(extra)
        if extra:
            findings.append(Finding(
                check="RL-429-SIDE-EFFECT", suite=SUITE,
                message=f"{group}: {len(extra)} {what}(s) exist that no admitted request created; "
                        f"{len(refused)} {group} request(s) were refused with 429",
                evidence={"group": group, "key": "key1", f"unexplained_{what}_ids": extra[:20],
                          "admitted_ids": len(ours),
                          "witness": [x.brief(session.names) for x in refused[:3]]}))
    return status, tasks_by_429


def _discover_findings(session: Session, windows: Sequence[Window], declared: dict[str, int],
                       discovered_window: int | None) -> list[Finding]:
    """--discover: the target's own limit and window, against the contract's (warnings)."""
    out: list[Finding] = []
    for group in session.groups:
        contract = session.contract_limits[group]
        seen = observed_limit(windows, "key1", group)
        header = declared.get(group)
        if header == contract and seen in (None, contract):
            continue
        parts = [f"declares X-RateLimit-Limit {header}" if header is not None else
                 "declares no X-RateLimit-Limit"]
        if seen is not None:
            parts.append(f"admitted {seen} in a full window")
        out.append(Finding(check="RL-DISCOVER", severity="warning", suite=SUITE,
                           message=f"{group}: the target {' and '.join(parts)}; the contract says "
                                   f"{contract}",
                           evidence={"group": group, "contract_limit": contract, "declared_limit": header,
                                     "observed_limit": seen}))
    if discovered_window is None:
        out.append(Finding(check="RL-DISCOVER", severity="warning", suite=SUITE,
                           message="the window could not be inferred: two consecutive Reset values "
                                   "did not increase",
                           evidence={"contract_window_s": session.contract_window}))
    elif discovered_window != session.contract_window:
        out.append(Finding(check="RL-DISCOVER", severity="warning", suite=SUITE,
                           message=f"the target's window is {discovered_window} s (two consecutive "
                                   f"Reset values), the contract says {session.contract_window:g} s",
                           evidence={"discovered_window_s": discovered_window,
                                     "contract_window_s": session.contract_window}))
    return out
