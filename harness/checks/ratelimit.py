"""Sans-I/O judgement of rate-limit exchanges: windows, counts and headers (no sockets, no sleeps).

The rate-limit suite records every request it sends as an `Exchange` (send and answer times,
status, the rate-limit headers, the body); `judge` then reads the whole list and returns the
findings. Nothing here depends on how the requests were sent, so the tests drive it with a
simulated target as well as with the real suite.

Windows are delimited by the target's own `X-RateLimit-Reset` values: every answer names the
end of the window that counted it, so counting per window needs no timing slack at all. Only
when a group's Reset values are unusable (missing, in the past, too far) does the judge fall
back to the contract's epoch-aligned windows, and then a request whose send and answer times
straddle a boundary counts as possibly in either window (never as certainly in one).
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from harness.checks.envelope import parse_json, problem_code
from harness.checks.headers import header_int
from harness.findings import Finding

SUITE = "ratelimit"
Role = Literal["probe", "burst", "follow", "key2", "after-reset", "verify"]
WindowMode = Literal["reset", "epoch"]

CHECKS: dict[str, str] = {
    "RL-HEADERS": "every answer of a limited group carries X-RateLimit-Limit, -Remaining and -Reset; "
                  "Limit and Remaining are integers",
    "RL-LIMIT-HEADER": "X-RateLimit-Limit equals the contract's limit of the group",
    "RL-OVER-ADMIT": "no more requests admitted in one window than the limit (windows delimited by the "
                     "target's own Reset values)",
    "RL-EARLY-429": "no 429 before the window's budget is spent",
    "RL-REMAINING": "X-RateLimit-Remaining counts down by exactly one per admitted request, from "
                    "limit-1, and is never negative",
    "RL-REMAINING-429": "X-RateLimit-Remaining is 0 on a 429",
    "RL-RESET": "X-RateLimit-Reset is an integer epoch second in the future, at most one window away",
    "RL-AFTER-RESET": "a request sent after Reset is admitted",
    "RL-RETRY-AFTER": "a 429 carries Retry-After in whole seconds (>= 1) that agrees with Reset within "
                      "a second",
    "RL-429-PROBLEM": "a 429 has a problem body whose code is rate_limited",
    "RL-429-SIDE-EFFECT": "a 429 on run or upload creates no task and no file (listed back)",
    "RL-KEY-ISOLATION": "exhausting one key leaves a second key's budget untouched",
    "RL-GROUP-ISOLATION": "exhausting one group leaves the other groups' budgets untouched",
    "RL-COVERAGE": "each group was driven past its limit inside one window of the target (otherwise "
                   "a limit one too high or too low is not ruled out)",
    "RL-DISCOVER": "with --discover: the limit and window inferred from the target equal the contract's",
}
SEVERITY: dict[str, Literal["error", "warning", "info"]] = {"RL-COVERAGE": "warning",
                                                            "RL-DISCOVER": "warning"}


@dataclass(slots=True)
class Exchange:
    """One request of the suite and what came back (or how it failed).

    `send_ns`/`done_ns` are monotonic nanoseconds (send just before the request was written,
    done once the whole answer, or the failure, was in); `wall` is epoch seconds at send.
    `headers` holds the answer's rate-limit headers and content type, names lower-cased.
    """

    idx: int
    key: str
    group: str
    role: Role
    observer: str
    method: str
    path: str
    send_ns: int
    wall: float
    done_ns: int
    http: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: str | None = None
    follows: tuple[str, ...] = ()

    @property
    def answered(self) -> bool:
        return self.http is not None

    @property
    def refused(self) -> bool:
        return self.http == 429

    @property
    def admitted(self) -> bool:
        return self.http is not None and self.http != 429

    @property
    def done_wall(self) -> float:
        return self.wall + (self.done_ns - self.send_ns) / 1e9

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def brief(self, names: HeaderNames) -> dict[str, Any]:
        """The exchange as evidence: enough to find it in the history and to see what came back."""
        out: dict[str, Any] = {
            "request": f"{self.method} {self.path}", "key": self.key, "group": self.group,
            "role": self.role, "observer": self.observer, "rl_req": self.idx,
            "send_ns": self.send_ns, "recv_ns": self.done_ns if self.answered else None,
            "sent_at": round(self.wall, 4), "answered_at": round(self.done_wall, 4),
            "http": self.http,
            "headers": {n: self.header(n) for n in (names.limit, names.remaining, names.reset,
                                                    names.retry_after) if self.header(n) is not None},
        }
        if self.follows:
            out["follows_exhausted"] = list(self.follows)
        if self.error:
            out["error"] = self.error
        if self.refused or (self.http is not None and self.http >= 400):
            out["body"] = self.body[:400].decode("utf-8", "replace")
        return out


@dataclass(frozen=True)
class HeaderNames:
    """The contract's header names, lower-cased."""

    limit: str = "x-ratelimit-limit"
    remaining: str = "x-ratelimit-remaining"
    reset: str = "x-ratelimit-reset"
    retry_after: str = "retry-after"

    @classmethod
    def from_contract(cls, headers: dict[str, str]) -> HeaderNames:
        return cls(limit=headers.get("limit", cls.limit).lower(),
                   remaining=headers.get("remaining", cls.remaining).lower(),
                   reset=headers.get("reset", cls.reset).lower(),
                   retry_after=headers.get("retry_after", cls.retry_after).lower())


@dataclass
class Baseline:
    """What the exchanges are judged against.

    `limits` are the per-window budgets counts are held to (the contract's, or with --discover
    the target's declared ones); `expect_limit_header`, when set, is what X-RateLimit-Limit must
    say. `tolerance_s` absorbs clock differences between client and target when a Reset (epoch
    seconds on the target's clock) is compared with the client's clock. Windows holding any
    request sent before `fresh_after_ns` (the probe phase) are not judged by count.
    """

    limits: dict[str, int]
    window_s: float
    tolerance_s: float
    fresh_after_ns: int
    primary: str = "key1"
    secondary: str = "key2"
    problem_code: str = "rate_limited"
    expect_limit_header: dict[str, int] | None = None
    names: HeaderNames = field(default_factory=HeaderNames)


@dataclass
class Window:
    """One window of one (key, group): the exchanges certainly in it and those possibly in it."""

    key: str
    group: str
    wid: int
    mode: WindowMode
    start: float
    end: float
    definite: list[Exchange] = field(default_factory=list)
    possible: list[Exchange] = field(default_factory=list)
    fresh: bool = True

    @property
    def exact(self) -> bool:
        """True when every exchange that may have counted here is certainly here and answered."""
        return not self.possible

    @property
    def admitted(self) -> list[Exchange]:
        return sorted((x for x in self.definite if x.admitted), key=lambda x: x.done_ns)

    @property
    def refused(self) -> list[Exchange]:
        return sorted((x for x in self.definite if x.refused), key=lambda x: x.done_ns)

    def admitted_before(self, refused: Exchange) -> int:
        """At most how many requests of this window the target can have admitted before `refused`.

        A request it processed earlier was sent before the 429 came back; unanswered ones and
        ones that may belong to a neighbouring window are counted too (an upper bound).
        """
        return sum(1 for x in (*self.definite, *self.possible)
                   if x is not refused and (x.admitted or not x.answered) and x.send_ns < refused.done_ns)

    def describe(self) -> dict[str, Any]:
        return {"key": self.key, "group": self.group, "delimited_by": self.mode,
                "reset": self.wid if self.mode == "reset" else None,
                "start": round(self.start, 3), "end": round(self.end, 3),
                "admitted": len(self.admitted), "refused": len(self.refused),
                "uncertain": len(self.possible)}


@dataclass
class Judgement:
    findings: list[Finding] = field(default_factory=list)
    windows: list[Window] = field(default_factory=list)
    group_pairs: list[str] = field(default_factory=list)
    modes: dict[str, str] = field(default_factory=dict)


def reset_problem(x: Exchange, names: HeaderNames, window_s: float, tolerance_s: float) -> str | None:
    """Why this answer's Reset is not an integer epoch second in the future within one window."""
    raw = x.header(names.reset)
    if raw is None:
        return "missing"
    reset = header_int(raw)
    if reset is None:
        return f"{raw!r} is not an integer epoch second"
    return reset_value_problem(reset, sent=x.wall, answered=x.done_wall, window_s=window_s,
                               past_slack_s=tolerance_s, ahead_slack_s=tolerance_s)


def remaining_problem(remaining: int, *, refused: bool, limit: int | None = None) -> str | None:
    """The one per-answer Remaining rule: 0 on a 429; after an admission never negative and, with
    `limit`, at most limit - 1 (it counts the request). Counting down is judged per window."""
    if refused:
        return None if remaining == 0 else f"is {remaining} on a 429 (must be 0)"
    if remaining < 0:
        return f"is negative ({remaining})"
    if limit is not None and remaining > limit - 1:
        return f"is {remaining} after an admitted request (at most {limit - 1}: it counts this request)"
    return None


def reset_value_problem(reset: int, *, sent: float, answered: float, window_s: float,
                        past_slack_s: float, ahead_slack_s: float) -> str | None:
    """The one Reset rule: an epoch second after the request was sent, and at most one window
    after the answer; the slacks are each caller's clock uncertainty (see docs/checks.md)."""
    if reset <= sent - past_slack_s:
        return f"{reset} is {sent - reset:.2f} s in the past when the request was sent"
    # An integer Reset can only round a fractional window's end up, by less than a second.
    rounding = 0.0 if float(window_s).is_integer() else 1.0
    if reset > answered + window_s + ahead_slack_s + rounding:
        return (f"{reset} is {reset - answered:.2f} s ahead, more than one window "
                f"({window_s:g} s) away")
    return None


def assign_windows(exchanges: Sequence[Exchange], key: str, group: str, baseline: Baseline
                   ) -> tuple[list[Window], WindowMode]:
    """Split one (key, group)'s exchanges into windows, by Reset if every Reset is usable."""
    names, w, tol = baseline.names, baseline.window_s, baseline.tolerance_s
    mine = [x for x in exchanges if x.key == key and x.group == group]
    answered = [x for x in mine if x.answered]
    with_reset = [x for x in answered if x.header(names.reset) is not None]
    use_reset = bool(with_reset) and len(with_reset) == len(answered) and all(
        reset_problem(x, names, w, tol) is None for x in with_reset)
    windows: dict[int, Window] = {}

    def window(wid: int, mode: WindowMode) -> Window:
        if wid not in windows:
            start, end = (wid - w, float(wid)) if mode == "reset" else (wid * w, (wid + 1) * w)
            windows[wid] = Window(key, group, wid, mode, start, end)
        return windows[wid]

    mode: WindowMode = "reset" if use_reset else "epoch"
    if use_reset:
        for x in answered:
            reset = header_int(x.header(names.reset))
            assert reset is not None
            window(reset, mode).definite.append(x)
        for x in mine:
            if not x.answered:
                for win in windows.values():
                    if win.start - tol <= x.done_wall and x.wall <= win.end + tol:
                        win.possible.append(x)
    else:
        for x in mine:
            first, last = math.floor(x.wall / w), math.floor(x.done_wall / w)
            if first == last and x.answered:
                window(first, mode).definite.append(x)
            else:
                for wid in range(first, last + 1):
                    window(wid, mode).possible.append(x)
    for win in windows.values():
        win.fresh = all(x.send_ns >= baseline.fresh_after_ns for x in (*win.definite, *win.possible))
    return sorted(windows.values(), key=lambda win: win.wid), mode


class _Findings:
    """Collects findings: one per (check, group), the first witness, and how often the rule broke."""

    def __init__(self, names: HeaderNames) -> None:
        self.names = names
        self.by_slot: dict[tuple[str, str], Finding] = {}

    def add(self, check: str, key: str, group: str, message: str, witness: Sequence[Exchange],
            window: Window | None = None, **evidence: Any) -> None:
        slot = (check, group)
        found = self.by_slot.get(slot)
        if found is not None:
            found.evidence["occurrences"] = int(found.evidence.get("occurrences", 1)) + 1
            return
        data: dict[str, Any] = {"group": group, "key": key,
                                "witness": [x.brief(self.names) for x in witness]}
        if window is not None:
            data["window"] = window.describe()
        data.update(evidence)
        self.by_slot[slot] = Finding(check=check, severity=SEVERITY.get(check, "error"), suite=SUITE,
                                     message=message, evidence=data)

    def all(self) -> list[Finding]:
        return list(self.by_slot.values())


def rate_limited_problem(content_type: str, body: bytes, wanted: str = "rate_limited") -> str | None:
    """Why a 429's body is not the documented problem (`type` ending in /errors/<wanted>), or None."""
    if "json" not in content_type:
        return f"content type {content_type!r} is not problem+json"
    ok, doc = parse_json(body)
    if not ok:
        return "the body is not JSON"
    if not isinstance(doc, dict):
        return "the body is not a JSON object"
    missing = [k for k in ("type", "title", "status", "detail") if k not in doc]
    if missing:
        return f"the problem body lacks {', '.join(missing)}"
    if doc.get("status") != 429:
        return f"the problem body says status {doc.get('status')!r}, not 429"
    code = problem_code(doc)
    if code != wanted:
        return f"the problem code is {code!r}, not {wanted!r}"
    return None


def retry_after_problem(raw: str | None, *, answered: tuple[float, float] | None = None,
                        reset: int | None = None, tolerance_s: float = 0.0,
                        window_s: float | None = None) -> str | None:
    """Why a 429's Retry-After breaks the promise, or None: the one Retry-After rule.

    Always: whole seconds, at least 1. With `window_s`: at most one window (ceil(window) + 1 s).
    With `answered` (epoch seconds at send and at answer) and the answer's `reset`: it points
    at Reset within a second, plus `tolerance_s` for the distance between the two clocks.
    """
    if raw is None:
        return "no Retry-After header"
    value = header_int(raw)
    if value is None or value < 1:
        return f"Retry-After {raw!r} is not a whole number of seconds >= 1"
    if window_s is not None and value > math.ceil(window_s) + 1:
        return (f"Retry-After {value} s is longer than one window: at most "
                f"{math.ceil(window_s) + 1} s for a {window_s:g} s window")
    if answered is None or reset is None:
        return None  # RL-HEADERS / RL-RESET report the Reset itself
    # The target computed it at some moment between send and answer; "within a second" either way.
    earliest, latest = answered[0] + value, answered[1] + value
    if latest < reset - 1 - tolerance_s or earliest > reset + 1 + tolerance_s:
        return (f"Retry-After {value} s points at {earliest:.2f}..{latest:.2f}, more than a second "
                f"from Reset {reset}")
    return None


def _per_answer(judged: Sequence[Exchange], baseline: Baseline, out: _Findings) -> None:
    names = baseline.names
    for x in judged:
        if not x.answered:
            continue
        missing = [n for n in (names.limit, names.remaining, names.reset) if x.header(n) is None]
        odd = [n for n in (names.limit, names.remaining)
               if x.header(n) is not None and header_int(x.header(n)) is None]
        if missing or odd:
            what = (f"lacks {', '.join(missing)}" if missing else "") + \
                   ("; " if missing and odd else "") + \
                   (f"has a non-integer {', '.join(odd)}" if odd else "")
            out.add("RL-HEADERS", x.key, x.group, f"{x.group}: an answer ({x.http}) to {x.method} "
                    f"{x.path} {what}", [x])
        limit = header_int(x.header(names.limit))
        expected = (baseline.expect_limit_header or {}).get(x.group)
        if limit is not None and expected is not None and limit != expected:
            out.add("RL-LIMIT-HEADER", x.key, x.group, f"{x.group}: X-RateLimit-Limit is {limit}, "
                    f"the contract says {expected}", [x], contract_limit=expected)
        remaining = header_int(x.header(names.remaining))
        remaining_issue = None if remaining is None else remaining_problem(remaining, refused=x.refused)
        if remaining_issue is not None and not x.refused:
            out.add("RL-REMAINING", x.key, x.group, f"{x.group}: X-RateLimit-Remaining {remaining_issue}",
                    [x])
        if x.header(names.reset) is not None:
            issue = reset_problem(x, names, baseline.window_s, baseline.tolerance_s)
            if issue is not None:
                out.add("RL-RESET", x.key, x.group, f"{x.group}: X-RateLimit-Reset {issue}", [x],
                        window_s=baseline.window_s, tolerance_s=baseline.tolerance_s)
        if x.refused:
            if remaining_issue is not None:
                out.add("RL-REMAINING-429", x.key, x.group,
                        f"{x.group}: X-RateLimit-Remaining {remaining_issue}", [x])
            issue = retry_after_problem(x.header(names.retry_after), answered=(x.wall, x.done_wall),
                                        reset=header_int(x.header(names.reset)),
                                        tolerance_s=baseline.tolerance_s)
            if issue is not None:
                out.add("RL-RETRY-AFTER", x.key, x.group, f"{x.group}: on a 429, {issue}", [x],
                        tolerance_s=baseline.tolerance_s)
            issue = rate_limited_problem(x.header("content-type") or "", x.body, baseline.problem_code)
            if issue is not None:
                out.add("RL-429-PROBLEM", x.key, x.group, f"{x.group}: on a 429, {issue}", [x])


def _remaining_issue(win: Window, limit: int, names: HeaderNames) -> tuple[str, Exchange] | None:
    """How the admitted answers' Remaining values differ from limit-1, limit-2, ... (or None)."""
    admitted = win.admitted
    values = [header_int(x.header(names.remaining)) for x in admitted]
    if not admitted or any(v is None for v in values):
        return None
    # Over-admission is its own finding: past the limit, Remaining stays at 0.
    wanted = Counter(max(0, limit - 1 - i) for i in range(len(admitted)))
    if Counter(values) != wanted:
        pool = Counter(wanted)
        for x, value in zip(admitted, values, strict=True):
            assert value is not None
            if pool[value] > 0:
                pool[value] -= 1
                continue
            shown = ", ".join(str(v) for v in values[:12]) + (", ..." if len(values) > 12 else "")
            return (f"{len(admitted)} admissions in one window showed Remaining {shown} "
                    f"(in answer order); expected each of {limit - 1} down to "
                    f"{max(0, limit - len(admitted))} once", x)
    # Each connection sends one request at a time: its answers must count strictly down.
    last: dict[str, tuple[int, Exchange]] = {}
    for x, value in sorted(zip(admitted, values, strict=True), key=lambda p: p[0].send_ns):
        assert value is not None
        before = last.get(x.observer)
        if before is not None and value >= before[0] and value > 0:
            return (f"on one connection Remaining went from {before[0]} to {value} between two "
                    "admitted requests", x)
        last[x.observer] = (value, x)
    return None


def _per_window(windows: Sequence[Window], baseline: Baseline, exhausted: dict[str, list[Window]],
                out: _Findings) -> None:
    names = baseline.names
    for win in windows:
        if not win.fresh or win.key != baseline.primary:
            continue
        limit = baseline.limits[win.group]
        admitted = win.admitted
        if len(admitted) > limit:
            out.add("RL-OVER-ADMIT", win.key, win.group, f"{win.group}: {len(admitted)} requests "
                    f"admitted in one window, the limit is {limit}", [admitted[limit]], win,
                    first_admitted=admitted[0].brief(names), limit=limit)
        for refused in win.refused:
            before = win.admitted_before(refused)
            if before >= limit:
                continue
            if refused.role == "after-reset":
                continue  # judged by RL-AFTER-RESET
            leaders = _exhausted_before(refused, exhausted)
            if refused.role == "follow" and leaders and before <= limit - 2:
                out.add("RL-GROUP-ISOLATION", win.key, win.group, f"{win.group} was refused after "
                        f"{before} of {limit} admissions, while {', '.join(leaders)} was exhausted",
                        [refused, *(exhausted_first(exhausted, g, refused) for g in leaders)], win,
                        limit=limit)
            else:
                out.add("RL-EARLY-429", win.key, win.group, f"{win.group}: a 429 after at most "
                        f"{before} admissions in its window, the limit is {limit}", [refused], win,
                        limit=limit, admitted_before=before)
            break
        if win.exact:
            issue = _remaining_issue(win, limit, names)
            if issue is not None:
                out.add("RL-REMAINING", win.key, win.group, f"{win.group}: {issue[0]}", [issue[1]],
                        win, limit=limit)


def _exhausted_before(x: Exchange, exhausted: dict[str, list[Window]]) -> list[str]:
    """Other groups of x's key that had answered a 429 before x was sent, in a window still open."""
    leaders = []
    for group, windows in exhausted.items():
        if group == x.group:
            continue
        for win in windows:
            if win.key != x.key or not win.refused:
                continue
            first = win.refused[0]
            if first.done_ns < x.send_ns and x.wall < win.end:
                leaders.append(group)
                break
    return leaders


def exhausted_first(exhausted: dict[str, list[Window]], group: str, x: Exchange) -> Exchange:
    for win in exhausted[group]:
        if win.key == x.key and win.refused and win.refused[0].done_ns < x.send_ns and x.wall < win.end:
            return win.refused[0]
    raise KeyError(group)


def _isolation(judged: Sequence[Exchange], windows_of: dict[tuple[str, str], list[Window]],
               baseline: Baseline, exhausted: dict[str, list[Window]], out: _Findings
               ) -> list[str]:
    names = baseline.names
    pairs: set[str] = set()
    for x in judged:
        if x.role == "key2" and x.answered:
            limit = baseline.limits[x.group]
            witness = [x]
            owner = [w.refused[0] for w in exhausted.get(x.group, [])
                     if w.key == baseline.primary and w.refused and w.refused[0].done_ns < x.send_ns
                     and x.wall < w.end]
            witness += owner[:1]
            if x.refused:
                out.add("RL-KEY-ISOLATION", x.key, x.group, f"{x.group}: a second key was refused "
                        f"(429) right after the first key had exhausted the group", witness)
                continue
            earlier = 0
            for win in windows_of.get((x.key, x.group), []):
                if x in win.definite:
                    earlier = sum(1 for y in win.admitted if y.send_ns < x.send_ns)
            remaining = header_int(x.header(names.remaining))
            # Higher than its own count is a counting fault (RL-REMAINING), not a shared budget.
            if remaining is not None and remaining < limit - 1 - earlier:
                out.add("RL-KEY-ISOLATION", x.key, x.group, f"{x.group}: a second key's request "
                        f"after the first key's exhaustion shows Remaining {remaining}, expected "
                        f"{limit - 1 - earlier} (its own budget)", witness)
        if x.key == baseline.primary and x.follows and x.answered:
            for leader in _exhausted_before(x, exhausted):
                if leader in x.follows:
                    pairs.add(f"{leader}->{x.group}")
    return sorted(pairs)


def _after_reset(judged: Sequence[Exchange], out: _Findings) -> None:
    for x in judged:
        if x.role == "after-reset" and x.refused:
            out.add("RL-AFTER-RESET", x.key, x.group, f"{x.group}: a request sent after the "
                    "advertised Reset was refused (429)", [x])


def _coverage(windows: Sequence[Window], baseline: Baseline, groups: Iterable[str],
              out: _Findings) -> None:
    for group in groups:
        limit = baseline.limits[group]
        mine = [w for w in windows if w.key == baseline.primary and w.group == group and w.fresh]
        # Decided: a window known exactly (every request certainly in it) that was driven past
        # the limit. A request straddling an epoch boundary (no usable Reset) leaves one off
        # in either direction undecided.
        if any(w.exact and (w.refused or len(w.admitted) > limit) for w in mine) or \
                any((check, group) in out.by_slot for check in ("RL-OVER-ADMIT", "RL-EARLY-429")):
            continue
        busiest = max(mine, key=lambda w: len(w.definite), default=None)
        if busiest is not None and (busiest.refused or len(busiest.admitted) > limit):
            why = (f"{len(busiest.possible)} request(s) may have counted in a neighbouring window "
                   "(no usable Reset to tell), so a limit one off is undecided")
        else:
            sent = len(busiest.definite) if busiest else 0
            why = (f"no window of the target saw more than {sent} of the suite's requests and no "
                   f"429, so a limit of {limit} is not proven (the client must send {limit + 1} "
                   "inside one window; use a longer --rate-window or a faster client)")
        out.add("RL-COVERAGE", baseline.primary, group, f"{group}: {why}", [], busiest)


def judge(exchanges: Sequence[Exchange], baseline: Baseline, groups: Iterable[str]) -> Judgement:
    """Every check that the exchanges alone decide (all but RL-429-SIDE-EFFECT and RL-DISCOVER)."""
    groups = list(groups)
    judged = [x for x in exchanges if x.group in baseline.limits]
    out = _Findings(baseline.names)
    result = Judgement()
    windows_of: dict[tuple[str, str], list[Window]] = {}
    for key in sorted({x.key for x in judged}):
        for group in groups:
            windows, mode = assign_windows(judged, key, group, baseline)
            windows_of[(key, group)] = windows
            result.windows.extend(windows)
            if key == baseline.primary:
                result.modes[group] = mode
    exhausted = {g: [w for w in result.windows if w.group == g and w.refused] for g in groups}
    _per_answer(judged, baseline, out)
    _per_window(result.windows, baseline, exhausted, out)
    result.group_pairs = _isolation(judged, windows_of, baseline, exhausted, out)
    _after_reset(judged, out)
    _coverage(result.windows, baseline, groups, out)
    result.findings = out.all()
    return result


def observed_limit(windows: Sequence[Window], key: str, group: str) -> int | None:
    """Admissions in the first fresh, exactly known window that ended in a 429 (the real budget)."""
    for win in windows:
        if win.key == key and win.group == group and win.fresh and win.exact and win.refused:
            first = win.refused[0]
            return sum(1 for x in win.admitted if x.send_ns < first.done_ns)
    return None


def observed_window(exchanges: Sequence[Exchange], key: str, group: str, names: HeaderNames
                    ) -> int | None:
    """The smallest step between two distinct, increasing Reset values of one (key, group)."""
    resets = sorted({r for x in exchanges if x.key == key and x.group == group and x.answered
                     for r in [header_int(x.header(names.reset))] if r is not None})
    steps = [b - a for a, b in itertools.pairwise(resets) if b > a]
    return min(steps) if steps else None
