"""The server's fixed-window limiter, driven with explicit clock values."""

from __future__ import annotations

import pytest

from harness.server.faults import Faults
from harness.server.ratelimit import FixedWindowLimiter


def test_counts_down_then_refuses_until_the_next_window() -> None:
    limiter = FixedWindowLimiter({"run": 3}, window=2.0)
    got = [limiter.hit("k", "run", 100.5) for _ in range(4)]
    assert [d.admitted for d in got] == [True, True, True, False]
    assert [d.remaining for d in got] == [2, 1, 0, 0]
    assert {d.reset for d in got} == {102}
    assert got[3].retry_after == 2 and got[0].retry_after is None
    assert got[3].headers()["Retry-After"] == "2"
    assert limiter.hit("k", "run", 102.0).admitted


def test_keys_and_groups_are_separate_buckets() -> None:
    limiter = FixedWindowLimiter({"run": 1, "get": 1}, window=60)
    assert limiter.hit("a", "run", 0).admitted
    assert not limiter.hit("a", "run", 1).admitted
    assert limiter.hit("b", "run", 1).admitted
    assert limiter.hit("a", "get", 1).admitted


def test_fractional_window_resets_on_whole_seconds() -> None:
    limiter = FixedWindowLimiter({"get": 1}, window=0.5)
    decision = limiter.hit("k", "get", 10.1)
    assert decision.reset == 11  # window ends at 10.5; Reset is an epoch second, rounded up


@pytest.mark.parametrize(("fault", "expect"), [
    ("over-admit", lambda ds: sum(d.admitted for d in ds) == 4),
    ("under-admit", lambda ds: sum(d.admitted for d in ds) == 2),
    ("no-rate-limit", lambda ds: all(d.admitted for d in ds) and ds[-1].remaining == 0),
    ("remaining-not-counting", lambda ds: all(d.remaining == 3 for d in ds if d.admitted)),
    ("reset-in-past", lambda ds: all(d.reset < 100 for d in ds)),
])
def test_faults_change_the_answers(fault: str, expect: object) -> None:
    limiter = FixedWindowLimiter({"run": 3}, window=2.0, faults=Faults([fault]))
    decisions = [limiter.hit("k", "run", 100.5) for _ in range(5)]
    assert callable(expect) and expect(decisions)


def test_shared_bucket_fault_mixes_keys() -> None:
    limiter = FixedWindowLimiter({"run": 1}, window=2.0, faults=Faults(["shared-bucket"]))
    assert limiter.hit("a", "run", 0).admitted
    assert not limiter.hit("b", "run", 0).admitted


def test_unknown_fault_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        Faults(["no-such-fault"])
