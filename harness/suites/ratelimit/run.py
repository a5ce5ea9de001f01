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

import http.client
import json
import shlex
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from harness.checks.envelope import data_of
from harness.checks.headers import header_int
from harness.checks.ratelimit import (
    CHECKS,
    SUITE,
    Baseline,
    Exchange,
    HeaderNames,
    Role,
    Window,
    judge,
    observed_limit,
    observed_window,
    reset_problem,
)
from harness.contract import Limits
from harness.findings import Finding, SuiteResult
from harness.history import Channel, HistoryWriter, Observation, rate_limit_facts
from harness.net.repro import KEY_VAR, SECOND_KEY_VAR, curl
from harness.settings import is_loopback
from harness.suites.ratelimit import GROUPS

Progress = Callable[[str], None]
UPLOAD_SPEC = {"uri": "", "filename": "ratelimit.txt", "content_type": "text/plain", "path": None,
               "size": 1, "public": None}


@dataclass
class RateLimitOptions:
    """How the suite drives the target.

    `max_tasks` is the budget of billable runs (the run group creates tasks); None = no budget.
    `clock_tolerance_s` is how far the target's clock may be from ours when its Reset (epoch
    seconds) is compared with our clock: None means 0.05 s on loopback (one clock) and 1 s
    otherwise. `lanes` are the connections (threads) per group during a burst.
    """

    groups: list[str] = field(default_factory=lambda: list(GROUPS))
    discover: bool = False
    max_tasks: int | None = None
    clock_tolerance_s: float | None = None
    run_body: dict[str, Any] = field(
        default_factory=lambda: {"app": "infsh/echo", "input": {"message": "ratelimit"}})
    lanes: dict[str, int] = field(default_factory=lambda: {"get": 4, "run": 2, "upload": 2})
    timeout_s: float = 10.0


# -- the client: http.client connections, one per thread -------------------------------------


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str
    port: int
    prefix: str
    base_url: str

    @classmethod
    def parse(cls, base_url: str) -> _Target:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(parts.scheme, parts.hostname, port, parts.path.rstrip("/"), base_url.rstrip("/"))


class _Lane:
    """One keep-alive connection of one key; requests on it are strictly sequential."""

    def __init__(self, target: _Target, api_key: str, key_label: str, observer: str,
                 timeout: float) -> None:
        self.target = target
        self.key_label = key_label
        self.observer = observer
        self.timeout = timeout
        self.headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json",
                        "User-Agent": "inference-harness/0.1 (ratelimit)"}
        self.conn = self._new()

    def _new(self) -> http.client.HTTPConnection:
        if self.target.scheme == "https":
            return http.client.HTTPSConnection(self.target.host, self.target.port, timeout=self.timeout,
                                               context=ssl.create_default_context())
        return http.client.HTTPConnection(self.target.host, self.target.port, timeout=self.timeout)

    def reconnect(self) -> None:
        """A fresh connection, opened now (so no request pays for the handshake)."""
        self.conn.close()
        self.conn = self._new()
        try:
            self.conn.connect()
        except OSError:
            self.conn.close()  # the first request will try again, and record a failure if any

    def close(self) -> None:
        self.conn.close()

    def send(self, method: str, path: str, body: bytes | None, group: str, role: Role,
             names: HeaderNames, follows: tuple[str, ...] = ()) -> Exchange:
        wall = time.time()
        send_ns = time.monotonic_ns()
        try:
            self.conn.request(method, self.target.prefix + path, body=body, headers=self.headers)
            response = self.conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            done = time.monotonic_ns()
            self.conn.close()
            return Exchange(-1, self.key_label, group, role, self.observer, method, path, send_ns, wall,
                            done, error=f"{type(exc).__name__}: {exc}", follows=follows)
        done = time.monotonic_ns()
        if response.will_close:
            self.conn.close()
        headers = {n: v for n in (names.limit, names.remaining, names.reset, names.retry_after,
                                  "content-type") if (v := response.getheader(n)) is not None}
        return Exchange(-1, self.key_label, group, role, self.observer, method, path, send_ns, wall,
                        done, http=response.status, headers=headers,
                        body=data if role == "verify" else data[:4096], follows=follows)


# -- one run of the suite ----------------------------------------------------------------------


def _data(x: Exchange) -> Any:
    try:
        body = json.loads(x.body)
    except ValueError:
        return None
    return data_of(body)


def _ids(x: Exchange | None) -> set[str] | None:
    """The ids in a task or file list answer; None if it was not a 200 list."""
    if x is None or x.http != 200:
        return None
    items = _data(x)
    if not isinstance(items, list):
        return None
    return {str(i["id"]) for i in items if isinstance(i, dict) and "id" in i}


class _Session:
    """Shared state of one suite run: lanes, requests per group, the record, who is exhausted."""

    def __init__(self, target: _Target, keys: Sequence[str], limits: Limits, options: RateLimitOptions,
                 groups: list[str], tolerance: float, lead: float) -> None:
        self.target = target
        self.keys = list(keys)
        self.options = options
        self.groups = groups
        self.names = HeaderNames.from_contract(limits.headers)
        self.tolerance = tolerance
        self.lead = lead
        self.window = limits.window_seconds
        self.limits = {g: limits.groups[g].limit for g in groups}
        self.contract_limits = dict(self.limits)
        self.contract_window = limits.window_seconds
        self.problem_code = str(limits.rejected.get("problem_code", "rate_limited"))
        self.lock = threading.Lock()
        self.exchanges: list[Exchange] = []
        self.exhausted: dict[str, Exchange] = {}
        self.get_path = "/tasks?limit=1"
        self.run_body = json.dumps(options.run_body, separators=(",", ":")).encode()
        self.upload_body = json.dumps({"files": [UPLOAD_SPEC]}, separators=(",", ":")).encode()
        self.lanes: dict[str, list[_Lane]] = {
            g: [self._lane(0, f"rl/{g}/key1/c{i + 1}") for i in range(max(1, options.lanes.get(g, 1)))]
            for g in groups}
        self.key2: dict[str, _Lane] = {g: self._lane(1, f"rl/{g}/key2") for g in groups} \
            if len(self.keys) > 1 else {}

    def _lane(self, key_index: int, observer: str) -> _Lane:
        return _Lane(self.target, self.keys[key_index], f"key{key_index + 1}", observer,
                     self.options.timeout_s)

    def all_lanes(self) -> list[_Lane]:
        return [lane for lanes in self.lanes.values() for lane in lanes] + list(self.key2.values())

    def request_of(self, group: str, key_label: str = "key1") -> tuple[str, str, bytes | None]:
        if group == "run":
            return "POST", "/apps/run", self.run_body
        if group == "upload":
            return "POST", "/files", self.upload_body
        # The second key reads its own (empty) list: the first key's task is a 404 for it.
        return "GET", self.get_path if key_label == "key1" else "/tasks?limit=1", None

    def send(self, lane: _Lane, group: str, role: Role, follows: tuple[str, ...] = ()) -> Exchange:
        method, path, body = self.request_of(group, lane.key_label)
        return self.record(lane.send(method, path, body, group, role, self.names, follows))

    def record(self, x: Exchange) -> Exchange:
        with self.lock:
            x.idx = len(self.exchanges)
            self.exchanges.append(x)
        return x

    def window_end(self, x: Exchange) -> float:
        """Where the window that counted x ends: its Reset if usable, else the epoch-aligned end."""
        if x.answered and reset_problem(x, self.names, self.window, self.tolerance) is None:
            reset = header_int(x.header(self.names.reset))
            assert reset is not None
            return float(reset)
        return (int(x.done_wall // self.window) + 1) * self.window

    def on_exhausted(self, group: str, x: Exchange) -> None:
        """A group's first 429 of a burst: note it, and let the second key try the same group."""
        with self.lock:
            self.exhausted[group] = x
        lane = self.key2.get(group)
        if lane is not None:
            self.send(lane, group, "key2")

    def follows_for(self, group: str, admitted: int, followed: set[str]) -> tuple[str, ...]:
        """Exhausted other groups this group's next request is the first to follow (lock held)."""
        if admitted > self.limits[group] - 2:
            return ()
        now = time.time()
        new = tuple(g for g, x in self.exhausted.items()
                    if g != group and g not in followed and now < self.window_end(x))
        followed.update(new)
        return new


class _Burst:
    """Drive one group of the first key past its limit: every lane sends until a 429.

    At most `cap` requests per window of the target (a window is told by the answers' Reset)
    and `total` in all: a burst that spills over a boundary gets a full attempt in the next
    window instead of stopping short of the limit there.
    """

    def __init__(self, session: _Session, group: str, cap: int, total: int) -> None:
        self.session = session
        self.group = group
        self.cap = cap
        self.total = total
        self.sent = 0
        self.admitted = 0
        self.window_end = 0.0
        self.window_first = 0  # ordinal of the first request seen in the newest window
        self.first_429: Exchange | None = None
        self.followed: set[str] = set()
        self.done = threading.Event()
        self.started_ns = 0
        self.ended_ns = 0

    def run(self) -> None:
        self.started_ns = time.monotonic_ns()
        try:
            threads = [threading.Thread(target=self._lane_loop, args=(lane,), daemon=True)
                       for lane in self.session.lanes[self.group]]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            self.ended_ns = time.monotonic_ns()
            self.done.set()  # whatever happened, a burst waiting for this one must go on

    def _next(self) -> tuple[int, tuple[str, ...]]:
        """The next request's ordinal and the exhausted groups it follows; -1 to stop."""
        with self.session.lock:
            if self.first_429 is not None or self.sent >= self.total or \
                    self.sent - self.window_first >= self.cap:
                return -1, ()
            self.sent += 1
            return self.sent - 1, self.session.follows_for(self.group, self.admitted, self.followed)

    def _lane_loop(self, lane: _Lane) -> None:
        while True:
            ordinal, follows = self._next()
            if ordinal < 0:
                return
            x = self.session.send(lane, self.group, "follow" if follows else "burst", follows)
            end = self.session.window_end(x) if x.answered else 0.0
            first = False
            with self.session.lock:
                if end > self.window_end:
                    self.window_end, self.window_first = end, ordinal
                if x.admitted:
                    self.admitted += 1
                elif x.refused and self.first_429 is None:
                    self.first_429 = x
                    first = True
            if first:
                self.session.on_exhausted(self.group, x)

    @property
    def rate(self) -> float | None:
        span = (self.ended_ns - self.started_ns) / 1e9
        return round(self.sent / span, 1) if span > 0 and self.sent else None


def _sleep_until(wall: float) -> None:
    while True:
        left = wall - time.time()
        if left <= 0:
            return
        time.sleep(min(left, 0.5))


@dataclass
class _Plan:
    caps: dict[str, int]  # requests per window of the target
    totals: dict[str, int]  # requests per burst
    billable: int  # runs the suite may create at most


def _plan(session: _Session, discover: bool, declared: dict[str, int], run_windows: int) -> _Plan:
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
    return _Plan(caps, totals, billable)


def _budget(session: _Session, options: RateLimitOptions, declared: dict[str, int], note: Progress,
            metrics: dict[str, Any]) -> _Plan | None:
    """The plan that fits the task budget: the run burst may use a second window if it spills,
    or only one; with less budget than that the run group is skipped. None: nothing left to do."""
    budget = options.max_tasks
    for run_windows in (2, 1):
        plan = _plan(session, options.discover, declared, run_windows)
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
    return _plan(session, options.discover, declared, 1) if session.groups else None


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
    session = _Session(_Target.parse(base_url), keys, limits, options, groups, tolerance, lead)
    metrics: dict[str, Any] = {"window_s": limits.window_seconds, "tolerance_s": tolerance,
                               "start_lead_s": lead, "keys": min(len(keys), 2), "skipped_groups": {}}
    plan = _budget(session, options, {}, note, metrics)
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
        _write_history(session, history_path)
    return SuiteResult(name=SUITE, status="failed" if findings else "passed",
                       checks=_checks_run(session, options, metrics), metrics=metrics,
                       findings=findings, duration_s=round(time.monotonic() - started, 3))


def _checks_run(session: _Session, options: RateLimitOptions, metrics: dict[str, Any]) -> list[str]:
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


def _drive(session: _Session, options: RateLimitOptions, plan: _Plan, note: Progress
           ) -> tuple[list[Finding], dict[str, Any]]:
    groups = session.groups
    first = {g: session.lanes[g][0] for g in groups}
    # 1. probe: where does the current window end? (run first: its task is the get group's target)
    probes: dict[str, Exchange] = {}
    for group in groups:
        probes[group] = session.send(first[group], group, "probe")
    run_probe = probes.get("run")
    task = _data(run_probe) if run_probe is not None and run_probe.admitted else None
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
        replanned = _budget(session, options, declared, note, skipped)
        if replanned is None:
            return [], {**skipped, "discovered_window_s": discovered_window, "tasks_created": sum(
                1 for x in session.exchanges if x.group == "run" and x.admitted)}
        plan = replanned
        boundary = _next_boundary(session, probes_now)
    # 2. the burst window
    bursts = {g: _Burst(session, g, plan.caps[g], plan.totals[g]) for g in groups}
    wait = boundary + session.lead - time.time()
    note(f"ratelimit: groups {', '.join(groups)}; bursts start at the next window boundary in "
         f"{max(0.0, wait):.2f} s")
    _sleep_until(boundary - min(1.0, session.window / 2))
    for lane in session.all_lanes():
        lane.reconnect()
    _sleep_until(boundary + session.lead)
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
    burst_end = max(b.ended_ns for b in bursts.values())
    # 3. after Reset: a fresh window for every group
    phase1 = [x for x in session.exchanges if x.key == "key1" and x.send_ns >= fresh_after]
    after = max(session.window_end(x) for x in phase1) if phase1 else time.time()
    _sleep_until(after + session.lead)
    for group in groups:
        session.send(first[group], group, "after-reset")
    if "upload" in groups and len(groups) > 1:
        with session.lock:
            session.exhausted.clear()
        again_burst = _Burst(session, "upload", plan.caps["upload"], plan.totals["upload"])
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
        finding.repro = _repro(session, finding)
    return findings, metrics


def _discover_window(session: _Session, probes: dict[str, Exchange], note: Progress
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
    _sleep_until(first + session.lead)
    again = {g: session.send(session.lanes[g][0], g, "probe") for g in session.groups}
    second = header_int(again[reference.group].header(session.names.reset))
    if second is None or second <= first:
        return None
    return second - first, again


def _next_boundary(session: _Session, probes: list[Exchange]) -> float:
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


def _list_back(session: _Session, lane: _Lane) -> dict[str, Exchange | None]:
    """The key's task list (if runs are probed) and file list (if uploads are), as answered."""
    out: dict[str, Exchange | None] = {}
    if "run" in session.groups:
        out["run"] = session.record(lane.send("GET", "/tasks?limit=1000", None, "get", "verify",
                                              session.names))
    if "upload" in session.groups:
        out["upload"] = session.record(lane.send("GET", "/files", None, "get", "verify", session.names))
    return out


def _side_effects(session: _Session, before: dict[str, Exchange | None],
                  after: dict[str, Exchange | None], findings: list[Finding]
                  ) -> tuple[dict[str, str], int]:
    """Per group "verified" or why not, and how many tasks exist that only a 429 can explain."""
    status: dict[str, str] = {}
    tasks_by_429 = 0
    for group, what in (("run", "task"), ("upload", "file")):
        if group not in session.groups:
            continue
        old, new = _ids(before.get(group)), _ids(after.get(group))
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
                data = _data(x)
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


def _discover_findings(session: _Session, windows: Sequence[Window], declared: dict[str, int],
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


def _write_history(session: _Session, path: Path) -> None:
    names = session.names
    fields = (("rl_remaining", names.remaining), ("rl_limit", names.limit), ("rl_reset", names.reset),
              ("retry_after", names.retry_after))
    with HistoryWriter(path) as history:
        for x in session.exchanges:
            extra = rate_limit_facts(x.header, x.group, fields)
            extra.update(rl_role=x.role, rl_req=x.idx)
            if x.follows:
                extra["rl_follows"] = list(x.follows)
            if x.error:
                extra["error"] = x.error
            if x.admitted and x.group in ("run", "upload") and x.role != "verify":
                data = _data(x)
                item = data[0] if isinstance(data, list) and data else data
                if isinstance(item, dict) and "id" in item:
                    extra["rl_task" if x.group == "run" else "rl_file"] = str(item["id"])
            timed_out = x.error is not None and "timed out" in x.error.lower()
            history.append(Observation(
                None, x.observer, _channel(x), x.send_ns, x.done_ns if x.answered else None, x.wall,
                http=x.http, outcome="ok" if x.answered else "timeout" if timed_out else "error",
                key=x.key, extra=extra))


def _channel(x: Exchange) -> Channel:
    if x.method == "POST" and x.path.startswith("/apps/run"):
        return "run"
    if x.method == "POST" and x.path.startswith("/files"):
        return "files"
    if x.path.startswith("/tasks/"):
        return "get"
    return "list"


# -- reproductions -----------------------------------------------------------------------------


def _burst_cmd(session: _Session, group: str, count: int) -> str:
    """`count` requests of a group over 4 parallel connections, one line of headers per answer."""
    method, path, body = session.request_of(group)
    names = session.names
    url = f"{session.target.base_url}{path}{'&' if '?' in path else '?'}rl=[1-{count}]"
    fmt = (f"%{{http_code}} limit=%header{{{names.limit}}} remaining=%header{{{names.remaining}}} "
           f"reset=%header{{{names.reset}}} retry-after=%header{{{names.retry_after}}}\\n")
    parts = ["curl", "-sS", "-Z", "--parallel-max", "4", "-o", "/dev/null", "-w", shlex.quote(fmt)]
    if method != "GET":
        parts += ["-X", method, "-H", shlex.quote("Content-Type: application/json")]
        if body is not None:
            parts += ["-d", shlex.quote(body.decode())]
    parts += ["-H", f'"Authorization: Bearer ${KEY_VAR}"', shlex.quote(url)]
    return " ".join(parts)


def _one_cmd(session: _Session, group: str, key_var: str = KEY_VAR, write_out: str | None = None) -> str:
    method, path, body = session.request_of(group, "key1" if key_var == KEY_VAR else "key2")
    return curl(method, session.target.base_url + path, json.loads(body) if body else None,
                key_var=key_var, write_out=write_out)


def _wait_cmd(window: float) -> str:
    """Sleep until just after the next epoch-aligned window boundary (the contract's alignment)."""
    return f"python3 -c 'import time; W = {window:g}; time.sleep(W - time.time() % W + 0.02)'"


def _repro(session: _Session, finding: Finding) -> str | None:
    """A shell line that shows the broken promise (the key stays $INFERENCE_API_KEY)."""
    group = finding.evidence.get("group")
    wait = _wait_cmd(session.window)
    if group not in session.groups:
        probe = "get" if "get" in session.groups else session.groups[-1]
        one = _one_cmd(session, probe, write_out=f"%header{{{session.names.reset}}}\\n")
        return f"{one}; sleep {session.window:g}; {one}"
    assert isinstance(group, str)
    limit = session.limits[group]
    check = finding.check
    if check == "RL-429-SIDE-EFFECT":
        what = "/tasks?limit=1000" if group == "run" else "/files"
        count = (curl("GET", session.target.base_url + what, show_headers=False) +
                 " | python3 -c 'import json, sys; print(len(json.load(sys.stdin)[\"data\"]))'")
        return (f"{count}; {wait} && {_burst_cmd(session, group, limit + 3)} | sort | uniq -c; {count}"
                "  # the second count minus the first must equal the 2xx lines")
    if check == "RL-KEY-ISOLATION":
        return (f"{wait} && {_burst_cmd(session, group, limit + 1)} > /dev/null && "
                f"{_one_cmd(session, group, SECOND_KEY_VAR)}")
    if check == "RL-GROUP-ISOLATION":
        witness = finding.evidence.get("witness") or []
        leader = witness[1]["group"] if len(witness) > 1 else next(g for g in session.groups if g != group)
        return (f"{wait} && {_burst_cmd(session, leader, session.limits[leader] + 1)} > /dev/null && "
                f"{_one_cmd(session, group)}")
    if check == "RL-AFTER-RESET":
        reset = _one_cmd(session, group, write_out=f"%header{{{session.names.reset}}}")
        return (f"{wait} && {_burst_cmd(session, group, limit)} > /dev/null && reset=$({reset}) && "
                f"sleep $(( reset - $(date +%s) )).05 && {_one_cmd(session, group)}")
    if check in ("RL-RETRY-AFTER", "RL-429-PROBLEM", "RL-REMAINING-429"):
        return f"{wait} && {_burst_cmd(session, group, limit)} > /dev/null && {_one_cmd(session, group)}"
    return f"{wait} && {_burst_cmd(session, group, limit + 2)} | sort | uniq -c | sort -rn"
