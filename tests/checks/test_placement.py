"""Where a task ran against what its infra and workers allow (sans-I/O)."""

from __future__ import annotations

from harness.checks.placement import placement_problem, worker_view

WORKERS = [{"id": "cw-1", "pool": "cloud", "busy": False}, {"id": "cw-2", "pool": "cloud", "busy": True},
           {"id": "pw-1", "pool": "private", "busy": False}, {"id": "pw-2", "pool": "private", "busy": True}]


def test_each_infra_and_the_workers_list() -> None:
    view = worker_view(WORKERS)
    assert view is not None and view.free_private() == ["pw-1"]
    assert placement_problem("cw-2", None, None, view) is None  # no infra: cloud
    assert placement_problem("pw-1", "private", None, view) is None
    assert placement_problem("pw-1", "private_first", None, view) is None
    assert placement_problem("pw-2", "private", ["pw-2"], view) is None
    assert "not one of the key's own" in (placement_problem("cw-1", "private", None, view) or "")
    assert "infra cloud ran on the private" in (placement_problem("pw-1", "cloud", None, view) or "")
    assert "not one of the workers asked for" in (placement_problem("pw-1", "private", ["pw-2"], view) or "")
    assert "does not list" in (placement_problem("pw-other-key", "private", None, view) or "")


def test_private_first_takes_a_free_private_worker_first() -> None:
    view = worker_view(WORKERS)
    assert view is not None
    problem = placement_problem("cw-1", "private_first", None, view)
    assert problem is not None and "['pw-1'] were free" in problem
    # No free private worker (or none among those asked for): cloud is right.
    busy = worker_view([{**w, "busy": True} if w["pool"] == "private" else w for w in WORKERS])
    assert busy is not None and placement_problem("cw-1", "private_first", None, busy) is None
    assert placement_problem("cw-1", "private_first", ["cw-1", "pw-2"], view) is None


def test_a_worker_list_that_is_not_one() -> None:
    assert worker_view({"id": "x"}) is None and worker_view([{"pool": "cloud"}]) is None
    assert worker_view([]) is not None
