"""The rate-limit suite's options."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.suites.ratelimit import GROUPS

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
