"""Per-key, per-group fixed-window rate limiter (sans-I/O: give it a time, get a decision)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from harness.server.faults import Fault, Faults


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one request against its group's budget."""

    admitted: bool
    limit: int
    remaining: int
    reset: int
    retry_after: int | None
    bare: bool = False  # no rate-limit headers at all (the sparse-rate-headers fault)

    def headers(self) -> dict[str, str]:
        if self.bare:
            return {}
        out = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }
        if self.retry_after is not None:
            out["Retry-After"] = str(self.retry_after)
        return out


class FixedWindowLimiter:
    """Counts admissions per (key, group) in windows aligned to multiples of `window` on the epoch."""

    def __init__(self, limits: dict[str, int], window: float, faults: Faults | None = None) -> None:
        if window <= 0:
            raise ValueError("window must be positive")
        self.limits = dict(limits)
        self.window = window
        self.faults = faults or Faults()
        # (key, group) -> [window index, admitted count]
        self._counts: dict[tuple[str, str], list[int]] = {}
        self._blocked: dict[str, int] = {}  # key -> window index (groups-block-together)
        self._penalty: dict[tuple[str, str], int] = {}  # bucket -> window index (penalty-window)
        self._admitted = 0

    def hit(self, key: str, group: str, now: float) -> Decision:
        """Count one request sent at epoch time `now`; admit it if the window has room."""
        limit = self.limits[group]
        index = math.floor(now / self.window)
        start = index * self.window
        end = start + self.window
        bucket_key = ("*" if Fault.SHARED_BUCKET in self.faults else key, group)
        bucket = self._counts.get(bucket_key)
        if bucket is None or bucket[0] != index:
            bucket = [index, 0]
            self._counts[bucket_key] = bucket
        capacity = limit + 1 if Fault.OVER_ADMIT in self.faults else limit
        if Fault.UNDER_ADMIT in self.faults:
            capacity = limit - 1
        if Fault.NO_RATE_LIMIT in self.faults:
            capacity = 1 << 62  # counted and reported, never enforced
        reset = math.floor(start) - 1 if Fault.RESET_IN_PAST in self.faults else math.ceil(end)
        shown = 2 * limit if Fault.LIMIT_HEADER_DOUBLED in self.faults else limit
        blocked = (Fault.GROUPS_BLOCK_TOGETHER in self.faults and self._blocked.get(key) == index) or (
            Fault.PENALTY_WINDOW in self.faults and self._penalty.get(bucket_key) == index)
        if bucket[1] >= capacity or blocked:
            self._blocked[key] = index
            if bucket[1] >= capacity:
                self._penalty[bucket_key] = index + 1
            retry_after = max(1, math.ceil(end - now))
            return Decision(False, shown, 1 if Fault.REMAINING_ON_429 in self.faults else 0, reset,
                            retry_after)
        bucket[1] += 1
        remaining = limit if Fault.REMAINING_NOT_COUNTING in self.faults else max(0, limit - bucket[1])
        self._admitted += 1
        bare = Fault.SPARSE_RATE_HEADERS in self.faults and self._admitted % 10 == 0
        return Decision(True, shown, remaining, reset, None, bare)
