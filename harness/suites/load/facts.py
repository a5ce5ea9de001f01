"""What an answer contributes to its Observation: a body's task fields, the rate-limit facts.

Sans-I/O: bytes and header lookups in, Observation fields out. The rules themselves live in
`harness.history` (task digest, header fields) and `harness.checks.ratelimit` (the 429 body).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from harness.checks.ratelimit import rate_limited_problem
from harness.history import RATE_LIMIT_FIELDS, rate_limit_facts, task_digest

REMAINING = RATE_LIMIT_FIELDS[0]  # ("rl_remaining", "x-ratelimit-remaining")


class Digest(NamedTuple):
    """The task fields of an Observation (None: absent), as `harness.history.task_digest` reads them."""

    status: Any = None
    output: bool | None = None
    error: bool | None = None
    updated_at: str | None = None
    trail: list[int] | None = None


NO_DIGEST = Digest()


def task_fields(task: Any) -> Digest:
    """The Observation fields of a task (any JSON: what is not a task gives no fields)."""
    return Digest(**task_digest(task))


def status_fields(data: Any) -> Digest:
    """The Observation field of a /status body: its status alone."""
    return Digest(data.get("status")) if isinstance(data, dict) else NO_DIGEST


def limit_facts(header: Callable[[str], str | None], group: str, code: int, content: bytes,
                full: bool) -> dict[str, Any]:
    """The rate-limit `extra` fields of an answer in a budget group (empty: none to note).

    `full` (the limit scenarios, every 429): all four headers, `rl_problem: False` for a 429
    whose body is not the documented problem, and `rl_missing` without Remaining; otherwise
    Remaining alone.
    """
    if header(REMAINING[1]) is None:
        return {"rl_group": group, "rl_missing": True} if full else {}
    facts = rate_limit_facts(header, group, RATE_LIMIT_FIELDS if full else (REMAINING,))
    if code == 429 and rate_limited_problem(header("content-type") or "", content) is not None:
        facts["rl_problem"] = False
    return facts
