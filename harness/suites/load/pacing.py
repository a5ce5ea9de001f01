"""Per-key budget pacing against fixed windows aligned to the epoch (limits.yaml's algorithm).

Pure logic: callers pass the time in (epoch seconds) and sleep themselves, so this is
testable without gevent.

- `BudgetPacer` keeps one process's share of one (key, group) budget: at most `quota`
  requests per window, none in the `guard` at either edge of a window (a request sent just
  before a boundary can be counted in the next window by the server; the guard absorbs
  latency and clock skew). It stops for the rest of a window when the server says the window
  is spent (Remaining 0 or a 429), so what earlier clients of the key used is respected.
- `SlotSchedule` spreads `limit x factor` sends evenly over the usable part of every window
  (at-limit: factor 1, over-limit: factor 2), this process taking every N-th slot.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Share:
    """This process's slice of a per-key budget: process `index` of `count`."""

    index: int = 0
    count: int = 1

    def quota(self, total: int) -> int:
        """Slots of `total` that belong to this process (round-robin)."""
        if self.count <= 1:
            return total
        index = self.index % self.count
        return total // self.count + (1 if index < total % self.count else 0)


def guard_for(window: float) -> float:
    """Seconds kept free at each edge of a window: 5 % of it, from 5 ms up to 250 ms."""
    return min(0.25, max(0.005, window * 0.05))


class BudgetPacer:
    """At most `quota` sends per window for this process; call `try_acquire` before each send.

    A send never waits while the budget has room. Near an edge (within `guard` of it) a send
    is charged to both windows it may be counted in by the server, so straddling a boundary
    can never push a window over its quota.
    """

    def __init__(self, limit: int, window: float, share: Share | None = None,
                 guard: float | None = None) -> None:
        if window <= 0:
            raise ValueError("window must be positive")
        self.limit = limit
        self.window = window
        self.quota = (share or Share()).quota(limit)
        self.guard = guard_for(window) if guard is None else guard
        self._used: dict[int, int] = {}
        self._spent: set[int] = set()
        self.throttled = 0  # times a caller had to wait

    def _charged(self, now: float) -> tuple[int, list[int], float, float]:
        index = math.floor(now / self.window)
        start = index * self.window
        end = start + self.window
        charged = [index]
        if now >= end - self.guard:
            charged.append(index + 1)
        if now < start + self.guard:
            charged.append(index - 1)
        return index, charged, start, end

    def try_acquire(self, now: float) -> float | None:
        """None: send now (counted). Otherwise the epoch time to wait for, then ask again."""
        index = math.floor(now / self.window)
        offset = now - index * self.window
        if self.guard <= offset < self.window - self.guard:
            # Away from the edges (the common case): only this window is charged.
            used = self._used.get(index, 0)
            if used < self.quota and index not in self._spent:
                self._used[index] = used + 1
                if len(self._used) > 4:
                    self._prune(index)
                return None
        index, charged, start, end = self._charged(now)
        if any(c in self._spent or self._used.get(c, 0) >= self.quota for c in charged):
            self.throttled += 1
            edges = (start + self.guard, end - self.guard, end, end + self.guard)
            return min(t for t in edges if t > now)
        for c in charged:
            self._used[c] = self._used.get(c, 0) + 1
        if len(self._used) > 4:
            self._prune(index)
        return None

    def _prune(self, index: int) -> None:
        self._used = {k: v for k, v in self._used.items() if k >= index - 1}
        self._spent = {k for k in self._spent if k >= index - 1}

    def spent(self, now: float) -> None:
        """The server answered Remaining 0 or 429: its current window has no room left."""
        self._spent.add(math.floor(now / self.window))


class SlotSchedule:
    """Evenly spread send times: `limit * factor` per window, this process every N-th one."""

    def __init__(self, limit: int, window: float, factor: float = 1.0, share: Share | None = None,
                 guard: float | None = None) -> None:
        self.window = window
        self.total = max(1, round(limit * factor))
        self.share = share or Share()
        self.guard = guard_for(window) if guard is None else guard
        self.step = (window - 2 * self.guard) / self.total

    def first_window(self, now: float) -> int:
        """The first window that starts at or after `now` (never a window already begun)."""
        return math.ceil(now / self.window - 1e-9)

    def slots(self, now: float) -> Iterator[tuple[float, int]]:
        """(send time, window index) from the next window boundary on, forever."""
        index = self.first_window(now)
        count = max(1, self.share.count)
        while True:
            base = index * self.window + self.guard
            for k in range(self.share.index % count, self.total, count):
                yield base + (k + 0.5) * self.step, index
            index += 1

    def usable_until(self, index: int) -> float:
        """A slot of window `index` must be sent before this time, or be dropped."""
        return (index + 1) * self.window - self.guard / 2


class TaskBudget:
    """This process's share of the `--max-tasks` budget: reserve before a run, refund a refusal."""

    def __init__(self, total: int, share: Share | None = None) -> None:
        self.quota = (share or Share()).quota(max(0, total))
        self.taken = 0

    def take(self) -> bool:
        if self.taken >= self.quota:
            return False
        self.taken += 1
        return True

    def refund(self) -> None:
        self.taken = max(0, self.taken - 1)

    @property
    def exhausted(self) -> bool:
        return self.taken >= self.quota
