"""The run's and the current suite's deadline, which every request of the harness honours.

Per-request deadlines stop one slow answer; this stops a target that answers every request just
in time, forever. The runner sets the deadline; `bounded_request`, the stream reader, the
rate-limit lanes and the contract suite's pacing call `check_deadline()` before each request and cap
their own wait at `remaining()`. `DeadlineExceeded` is a BaseException so that a suite's
`except Exception` around one request does not swallow it: it ends the suite.
"""

from __future__ import annotations

import threading
import time


class DeadlineExceeded(BaseException):
    """The run's or the suite's deadline passed; `what` says which."""

    def __init__(self, what: str, limit_s: float) -> None:
        super().__init__(f"{what} deadline of {limit_s:g} s reached")
        self.what = what
        self.limit_s = limit_s


_lock = threading.Lock()
_state: tuple[float, str, float] | None = None  # (monotonic end, what, limit in s)


def set_deadline(end: float | None, what: str = "run", limit_s: float = 0.0) -> None:
    """Requests from now on must end by monotonic time `end` (None: no deadline)."""
    global _state
    with _lock:
        _state = None if end is None else (end, what, limit_s)


def remaining() -> float | None:
    """Seconds left, or None without a deadline (never below 0)."""
    state = _state
    return None if state is None else max(0.0, state[0] - time.monotonic())


def deadline_passed() -> bool:
    """Whether a deadline is set and has passed."""
    state = _state
    return state is not None and time.monotonic() >= state[0]


def check_deadline() -> None:
    """Raise DeadlineExceeded when the deadline has passed."""
    state = _state
    if state is not None and time.monotonic() >= state[0]:
        raise DeadlineExceeded(state[1], state[2])


def capped(timeout_s: float) -> float:
    """`timeout_s`, or less when the deadline is nearer (at least a few ms, to fail fast)."""
    left = remaining()
    return timeout_s if left is None else max(0.005, min(timeout_s, left))


def current() -> DeadlineExceeded | None:
    """The exception the current deadline raises when it passes (None: no deadline)."""
    state = _state
    return None if state is None else DeadlineExceeded(state[1], state[2])
