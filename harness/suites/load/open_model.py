"""Open-model scheduling on gevent: work starts on a clock, not when the previous work ends.

- `Arrivals` (`--arrival-rate`): iterations are due at a constant rate. A due iteration goes
  to an idle user with its *intended* start time, so latencies are measured from when the
  work should have started (coordinated omission corrected); when no user is idle it is
  dropped and counted (k6's `dropped_iterations`): add users rather than let the load
  generator quietly slow down to what the server allows.
- `SlotFeed` (at-limit / over-limit): the sends of every (key, group) lane at evenly spread
  times inside each rate-limit window, queued for whichever user is free; a slot taken too
  late for its window is dropped by the user (never sent into the next window).
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import gevent  # type: ignore[import-untyped]
from gevent.event import AsyncResult  # type: ignore[import-untyped]
from gevent.queue import Queue  # type: ignore[import-untyped]

from harness.suites.load.pacing import Share, SlotSchedule


class Arrivals:
    """Iterations due at `rate` per second for the whole run; this process takes its share."""

    def __init__(self, rate: float, share: Share) -> None:
        count = max(1, share.count)
        self.interval_ns = count * 1e9 / rate
        self.offset_ns = (share.index % count) * 1e9 / rate
        self.idle: deque[Any] = deque()
        self.dropped = 0
        self.started = 0
        self._greenlet: Any = None
        self._stopped = False

    def _run(self) -> None:
        origin = time.monotonic_ns() + self.offset_ns
        k = 0
        while not self._stopped:
            intended = int(origin + k * self.interval_ns)
            delay = intended - time.monotonic_ns()
            if delay > 0:
                gevent.sleep(delay / 1e9)
            if self._stopped:
                break
            if self.idle:
                self.idle.popleft().set(intended)
                self.started += 1
            else:
                self.dropped += 1
            k += 1

    def wait_turn(self) -> int | None:
        """Block until an iteration is due; its intended start (monotonic ns), or None: stop."""
        if self._stopped:
            return None
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._run)
        result = AsyncResult()
        self.idle.append(result)
        value = result.get()
        return int(value) if value is not None else None

    def stop(self) -> None:
        self._stopped = True
        while self.idle:
            self.idle.popleft().set(None)
        if self._greenlet is not None:
            self._greenlet.kill(block=False)


@dataclass(frozen=True)
class Slot:
    """One planned send: when (epoch s), in which window, for which key and group."""

    at: float
    window: int
    key: int
    group: str
    deadline: float


class SlotFeed:
    """Time-ordered slots of every lane, handed out to whichever user asks next."""

    def __init__(self, lanes: list[tuple[int, str]], limits: dict[str, int], window: float,
                 factor: float, share: Share) -> None:
        self.schedules = {(key, group): SlotSchedule(limits[group], window, factor, share)
                          for key, group in lanes}
        self.queue: Any = Queue()
        self.waiting = 0
        self._greenlet: Any = None
        self._stopped = False

    def _lane(self, key: int, group: str, schedule: SlotSchedule, now: float) -> Iterator[Slot]:
        for at, window in schedule.slots(now):
            yield Slot(at, window, key, group, schedule.usable_until(window))

    def _run(self) -> None:
        now = time.time()
        lanes = [self._lane(key, group, schedule, now)
                 for (key, group), schedule in self.schedules.items()]
        for slot in heapq.merge(*lanes, key=lambda s: s.at):
            if self._stopped:
                return
            delay = slot.at - time.time()
            if delay > 0:
                gevent.sleep(delay)
            if self._stopped:
                return
            self.queue.put(slot)

    def start(self) -> None:
        if self._greenlet is None and self.schedules:
            self._greenlet = gevent.spawn(self._run)

    def take(self) -> Slot | None:
        """The next due slot (blocking), or None once the feed is stopped."""
        if self._stopped:
            return None
        self.waiting += 1
        try:
            item = self.queue.get()
        finally:
            self.waiting -= 1
        return item if isinstance(item, Slot) else None

    def stop(self) -> None:
        self._stopped = True
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
        for _ in range(self.waiting + 1):
            self.queue.put(None)
