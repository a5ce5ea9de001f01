"""What a run is doing right now: suite, phase, requests, errors, rate and p95 so far.

The runner names the suite, the history writer counts every observation as it is recorded, and
the load suite passes on its child processes' counters; the CLI reads `meter().snapshot()` to
draw a live line. Nothing here prints.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

# Recent latencies kept for "p95 so far" (a sliding view, not the report's exact HDR figure).
RECENT = 4096


@dataclass(frozen=True)
class Snapshot:
    suite: str | None
    phase: str | None
    requests: int
    errors: int
    elapsed_s: float
    p95_ms: float | None
    rps: float | None


class Meter:
    """Thread-safe running counters of the current suite."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reset(None)

    def _reset(self, suite: str | None) -> None:
        self.suite = suite
        self.phase: str | None = None
        self.requests = 0
        self.errors = 0
        self.started = time.monotonic()
        self.recent: deque[float] = deque(maxlen=RECENT)
        self.outside: tuple[int, int, float | None, float | None] | None = None  # a child's figures

    def start_suite(self, name: str | None) -> None:
        with self._lock:
            self._reset(name)

    def set_phase(self, name: str | None) -> None:
        with self._lock:
            self.phase = name

    def observe(self, latency_ms: float | None, error: bool) -> None:
        """One request or stream event seen in this process."""
        with self._lock:
            self.requests += 1
            self.errors += int(error)
            if latency_ms is not None and latency_ms >= 0:
                self.recent.append(latency_ms)

    def absorb(self, requests: int, errors: int, rps: float | None, p95_ms: float | None) -> None:
        """Figures another process counted (the load master): they replace this process's own."""
        with self._lock:
            self.outside = (requests, errors, rps, p95_ms)

    def snapshot(self) -> Snapshot:
        with self._lock:
            elapsed = time.monotonic() - self.started
            if self.outside is not None:
                requests, errors, rps, p95 = self.outside
            else:
                requests, errors = self.requests, self.errors
                rps = requests / elapsed if elapsed > 0 and requests else None
                ordered = sorted(self.recent)
                p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] if ordered else None
            return Snapshot(self.suite, self.phase, requests, errors, elapsed, p95, rps)


_METER = Meter()


def meter() -> Meter:
    """The process's meter."""
    return _METER
