"""Everything the suite sends goes through one Traffic: paced per rate-limit group, bounded in time
and tasks, and every complete response judged by the project rules.

The Pacer keeps each group below `utilisation` of its limit per window (limits.yaml, window
scaled), and also holds a group when the target's own X-RateLimit-Remaining says the budget is
nearly spent (another suite may have used part of the window). A 429 it gets anyway is counted
(CT-RATE-LIMITED), waited out, and the request is sent once more.
"""

from __future__ import annotations

import email.utils
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from harness.checks.envelope import parse_json
from harness.checks.headers import header_count
from harness.checks.issues import SUITE, Issue
from harness.checks.responses import Exchange, RuleSet, check_exchange
from harness.findings import Finding
from harness.history import key_label
from harness.net.recording import ExchangeRecorder
from harness.net.repro import KEY_VAR, SECOND_KEY_VAR, curl

MAX_FINDINGS_PER_CHECK = 25
# Operations that start billable work on a real target: each counts against --max-tasks.
BILLABLE = frozenset({"POST /apps/run", "POST /agents/run"})


# When a request went out: CLOCK_MONOTONIC nanoseconds and epoch seconds (an Observation's
# `send_ns` and `wall`). Taken after the pacer's wait, so that latency is the target's alone.
Stamp = tuple[int, float]


def stamp() -> Stamp:
    return time.monotonic_ns(), time.time()


# The key an Exchange.auth label stands for, as the history names it (None: no key of the run).
_KEY_LABELS = {"key": key_label(0), "second": key_label(1)}


class StopRun(Exception):
    """The suite's time budget is spent: stop sending."""


class TaskBudgetSpent(Exception):
    """Creating another task would pass --max-tasks."""


class Pacer:
    """Per-group pacing from the contract's limits plus the target's own rate-limit headers."""

    def __init__(self, limits: Mapping[str, int], window_s: float, utilisation: float = 0.8,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 wall: Callable[[], float] = time.time) -> None:
        self.window_s = window_s
        self.interval = {group: window_s / max(1.0, limit * utilisation) for group, limit in limits.items()}
        self.reserve = {group: max(1, int(limit * 0.05)) for group, limit in limits.items()}
        self._next: dict[str, float] = {}
        self._hold: dict[str, float] = {}
        self._clock, self._sleep, self._wall = clock, sleep, wall
        self._lock = threading.Lock()
        self.waited_s = 0.0

    def acquire(self, group: str | None, stop_at: float | None = None) -> None:
        """Wait for the group's next slot; raise StopRun if that is past `stop_at`."""
        if group is None:
            return
        with self._lock:
            now = self._clock()
            start = max(now, self._next.get(group, now), self._hold.get(group, now))
            self._next[group] = start + self.interval.get(group, 0.0)
        if stop_at is not None and start > stop_at:
            raise StopRun
        if start > now:
            self.waited_s += start - now
            self._sleep(start - now)

    def observe(self, group: str | None, status: int, headers: Mapping[str, str],
                remaining_name: str, reset_name: str, retry_name: str) -> float:
        """Learn from a response; returns how long to wait before a retry (429), else 0."""
        if group is None:
            return 0.0
        now = self._clock()
        if status == 429:
            wait = header_count(headers.get(retry_name.lower())) or self.window_s
            wait = min(wait, self.window_s + 1)
            with self._lock:
                self._hold[group] = max(self._hold.get(group, now), now + wait)
            return wait
        remaining = header_count(headers.get(remaining_name.lower()))
        reset = header_count(headers.get(reset_name.lower()))
        if remaining is not None and reset is not None and remaining <= self.reserve.get(group, 1):
            until_reset = reset - _server_epoch(headers, self._wall())
            if 0 < until_reset <= self.window_s + 1:
                with self._lock:
                    self._hold[group] = max(self._hold.get(group, now), now + until_reset + 0.02)
        return 0.0


def _server_epoch(headers: Mapping[str, str], local: float) -> float:
    """The local clock, unless the response's Date says the target's clock is far from it."""
    date = headers.get("date")
    if date:
        try:
            server = email.utils.parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError):
            return local
        if abs(server - local) > 2.0:
            return server
    return local


def auth_label(authorization: str | None, keys: list[str]) -> str:
    if not authorization:
        return "none"
    token = authorization.partition(" ")[2].strip()
    if keys and token == keys[0]:
        return "key"
    if len(keys) > 1 and token == keys[1]:
        return "second"
    return "other"


def repro_of(ex: Exchange) -> str:
    """A curl command for an exchange; a key is only ever `$INFERENCE_API_KEY` / `$SECOND_API_KEY`."""
    headers = {name.title(): value for name, value in ex.request_headers.items()
               if name in ("accept", "content-type") and not (name == "content-type" and ex.request_body
                                                               and parse_json(ex.request_body)[0])}
    body: Any = None
    raw: str | None = None
    if ex.request_body:
        ok, value = parse_json(ex.request_body)
        if ok:
            body = value
        else:
            raw = ex.request_body[:2000].decode("utf-8", "replace")
    return curl(ex.method, ex.url, body, auth=ex.auth in ("key", "second"),
                key_var=SECOND_KEY_VAR if ex.auth == "second" else KEY_VAR,
                bearer="inf_not_a_real_key" if ex.auth == "other" else None, headers=headers,
                stream="stream" in ex.path.rsplit("/", 1)[-1], raw_body=raw)


def exchange_evidence(ex: Exchange, limit: int = 600) -> dict[str, Any]:
    keep = ("content-type", "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset",
            "retry-after", "allow", "date")
    evidence: dict[str, Any] = {
        "request": f"{ex.method} {ex.url}",
        "status": ex.status,
        "headers": {k: v for k, v in ex.headers.items() if k in keep},
        "body": ex.body[:limit].decode("utf-8", "replace"),
    }
    if ex.request_body:
        evidence["request_body"] = ex.request_body[:limit].decode("utf-8", "replace")
    return evidence


@dataclass
class _Slot:
    finding: Finding
    occurrences: int = 1


@dataclass
class Collector:
    """Turns Issues into Findings: one per (check, operation, key), counting repeats."""

    keys: list[str]
    findings: dict[tuple[str, str, str], _Slot] = field(default_factory=dict)
    dropped: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, issue: Issue, where: str = "", evidence: dict[str, Any] | None = None,
            repro: str | None = None) -> None:
        ident = (issue.check, where, issue.key or issue.message)
        with self._lock:
            slot = self.findings.get(ident)
            if slot is not None:
                slot.occurrences += 1
                return
            if sum(1 for (check, _, _) in self.findings if check == issue.check) >= MAX_FINDINGS_PER_CHECK:
                self.dropped += 1
                return
            message = f"{where}: {issue.message}" if where else issue.message
            self.findings[ident] = _Slot(Finding(
                check=issue.check, severity=issue.severity, suite=SUITE, message=self._redact(message),
                task_id=issue.task_id, evidence=self._redact_obj({**(evidence or {}), **issue.evidence}),
                repro=self._redact(repro) if repro else None))

    def result(self) -> list[Finding]:
        out = []
        for slot in self.findings.values():
            finding = slot.finding
            if slot.occurrences > 1:
                finding = finding.model_copy(update={"evidence": {**finding.evidence,
                                                                  "occurrences": slot.occurrences}})
            out.append(finding)
        return out

    def _redact(self, text: str) -> str:
        for index, key in enumerate(self.keys):
            if key:
                text = text.replace(key, "$SECOND_API_KEY" if index else "$INFERENCE_API_KEY")
        return text

    def _redact_obj(self, value: dict[str, Any]) -> dict[str, Any]:
        redacted: dict[str, Any] = json.loads(self._redact(json.dumps(value, default=str)))
        return redacted


@dataclass
class Traffic:
    """The shared gate of every request: pacing, time and task budgets, rules on every answer."""

    base_url: str
    keys: list[str]
    rules: RuleSet
    collector: Collector
    pacer: Pacer
    stop_at: float  # monotonic
    max_tasks: int
    tasks_created: int = 0
    requests: int = 0
    rate_limited: int = 0
    # Requests whose answer never came (a timeout before the head): indeterminate, not findings.
    indeterminate: list[dict[str, str]] = field(default_factory=list)
    statuses_seen: list[tuple[Any, Any, Any]] = field(default_factory=list)
    on_exchange: list[Callable[[Exchange, str | None], None]] = field(default_factory=list)
    # Every request, answered or not, as an Observation of the run's history (None: not recorded).
    # Recorded without a task, so the lifecycle checker leaves them alone: it judges task
    # histories (every accepted run followed to its end, per-observer order, the real-time
    # terminal rule), and this suite's traffic is not one: schemathesis starts tasks it never
    # follows (each would stay unresolved), sends negative and keyless cases, and the cancel
    # probe runs on a second thread under the same observer.
    recorder: ExchangeRecorder | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.base_path = urlsplit(self.base_url).path.rstrip("/")

    def relative_path(self, url: str) -> str:
        path = urlsplit(url).path
        if self.base_path and path.startswith(self.base_path):
            path = path[len(self.base_path):]
        return path or "/"

    def unanswered(self, operation: str, request: str, error: str) -> None:
        """Count a request whose answer never came; it is judged neither right nor wrong."""
        with self._lock:
            self.indeterminate.append({"operation": operation, "request": request, "error": error})

    def record_failure(self, method: str, url: str, sent: Stamp, error: str, timeout: bool,
                       auth: str = "key") -> None:
        """Record a request without a complete answer: `timeout` when none came at all."""
        if self.recorder is not None:
            self.recorder.as_key(_KEY_LABELS.get(auth)).failed(method, url, *sent, error, timeout)

    def out_of_time(self) -> bool:
        return time.monotonic() >= self.stop_at

    def before(self, method: str, url: str) -> str | None:
        """Wait for the request's slot; returns its operation. Raises StopRun / TaskBudgetSpent."""
        if self.out_of_time():
            raise StopRun
        operation = self.rules.operations.operation(method, self.relative_path(url))
        if operation in BILLABLE and self.tasks_created >= self.max_tasks:
            raise TaskBudgetSpent
        self.pacer.acquire(self.rules.group(operation), self.stop_at)
        return operation

    def after(self, ex: Exchange, operation: str | None, sent: Stamp | None = None,
              head_ns: int | None = None, auth: str | None = None) -> float:
        """Judge a complete answer, and record it when `sent` says when it went out (its latency
        is to `head_ns`, default now; its key `auth`, default the exchange's); returns seconds
        to wait before retrying a 429, else 0."""
        if self.recorder is not None and sent is not None:
            label = _KEY_LABELS.get(auth or ex.auth)
            self.recorder.as_key(label).answered(ex.method, ex.url, *sent, ex.status, ex.headers, head_ns)
        with self._lock:
            self.requests += 1
            if operation in BILLABLE and 200 <= ex.status < 300:
                self.tasks_created += 1
        names = self.rules.limits.headers
        wait = self.pacer.observe(self.rules.group(operation), ex.status, ex.headers, names["remaining"],
                                  names["reset"], names["retry_after"])
        where = operation or f"{ex.method} {ex.path}"
        if ex.status == 429:
            with self._lock:
                self.rate_limited += 1
            self.collector.add(Issue(
                "CT-RATE-LIMITED", f"the paced run got a 429 from the {self.rules.group(operation)!r} "
                "group (another client may share the key's budget, or the target's limit is lower "
                "than limits.yaml says); waited and retried, not judged as a contract failure",
                key="429", severity="warning"), where, exchange_evidence(ex), repro_of(ex))
        for issue in check_exchange(ex, self.rules):
            self.collector.add(issue, where, exchange_evidence(ex), repro_of(ex))
        for hook in self.on_exchange:
            hook(ex, operation)
        return wait
