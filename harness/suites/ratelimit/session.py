"""One run's connections, exchanges and bursts: the rate-limit suite's traffic."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Sequence
from typing import Any

from harness.checks.envelope import data_of, parse_json
from harness.checks.headers import header_int
from harness.checks.ratelimit import (
    Exchange,
    HeaderNames,
    Role,
    reset_problem,
)
from harness.contract import Limits
from harness.net.deadline import check_deadline
from harness.net.lanes import Lane, Target
from harness.suites.ratelimit.options import UPLOAD_SPEC, RateLimitOptions


def exchange_data(x: Exchange) -> Any:
    """The `data` of an answer's JSON body; None if the body is not JSON."""
    ok, body = parse_json(x.body)
    return data_of(body) if ok else None


def listed_ids(x: Exchange | None, filename: str | None = None) -> set[str] | None:
    """The ids in a task or file list answer (only files named `filename`, if given); None if
    it was not a 200 list."""
    if x is None or x.http != 200:
        return None
    items = exchange_data(x)
    if not isinstance(items, list):
        return None
    return {str(i["id"]) for i in items if isinstance(i, dict) and "id" in i
            and (filename is None or i.get("filename") == filename)}


class Session:
    """Shared state of one suite run: lanes, requests per group, the record, who is exhausted."""

    def __init__(self, target: Target, keys: Sequence[str], limits: Limits, options: RateLimitOptions,
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
        # A file name of this run alone: files other clients (or earlier tasks' outputs) add to
        # the key's list meanwhile are not this suite's side effects.
        self.upload_filename = f"harness-ratelimit-{secrets.token_hex(4)}.txt"
        self.upload_body = json.dumps({"files": [{**UPLOAD_SPEC, "filename": self.upload_filename}]},
                                      separators=(",", ":")).encode()
        self.lanes: dict[str, list[Lane]] = {
            g: [self._lane(0, f"rl/{g}/key1/c{i + 1}") for i in range(max(1, options.lanes.get(g, 1)))]
            for g in groups}
        self.key2: dict[str, Lane] = {g: self._lane(1, f"rl/{g}/key2") for g in groups} \
            if len(self.keys) > 1 else {}

    def _lane(self, key_index: int, observer: str) -> Lane:
        return Lane(self.target, self.keys[key_index], f"key{key_index + 1}", observer,
                     self.options.timeout_s)

    def all_lanes(self) -> list[Lane]:
        return [lane for lanes in self.lanes.values() for lane in lanes] + list(self.key2.values())

    def request_of(self, group: str, key_label: str = "key1") -> tuple[str, str, bytes | None]:
        if group == "run":
            return "POST", "/apps/run", self.run_body
        if group == "upload":
            return "POST", "/files", self.upload_body
        # The second key reads its own (empty) list: the first key's task is a 404 for it.
        return "GET", self.get_path if key_label == "key1" else "/tasks?limit=1", None

    def send(self, lane: Lane, group: str, role: Role, follows: tuple[str, ...] = ()) -> Exchange:
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


class Burst:
    """Drive one group of the first key past its limit: every lane sends until a 429.

    At most `cap` requests per window of the target (a window is told by the answers' Reset)
    and `total` in all: a burst that spills over a boundary gets a full attempt in the next
    window instead of stopping short of the limit there.
    """

    def __init__(self, session: Session, group: str, cap: int, total: int) -> None:
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

    def _lane_loop(self, lane: Lane) -> None:
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


def sleep_until(wall: float) -> None:
    """Sleep until epoch time `wall`; the run's deadline ends the wait (DeadlineExceeded)."""
    while True:
        check_deadline()
        left = wall - time.time()
        if left <= 0:
            return
        time.sleep(min(left, 0.1))
