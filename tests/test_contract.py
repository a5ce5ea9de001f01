"""harness.contract: the typed lifecycle and limits the checks read."""

from __future__ import annotations

from harness.contract import contracts_dir, load_lifecycle, load_limits


def test_sdk_lifecycle() -> None:
    lc = load_lifecycle()
    assert lc.name == "sdk" and lc.completed == 10 and lc.failed == 11 and lc.cancelled == 12
    assert lc.terminal == [10, 11, 12, 13] and lc.statuses[3] == "dispatched"
    assert lc.may_follow(1, 10) and lc.may_follow(3, 7) and lc.may_follow(7, 7)
    assert not lc.may_follow(7, 6) and not lc.may_follow(10, 7) and not lc.may_follow(10, 11)
    assert not lc.may_follow(8, 10)  # a cancelling task only ends cancelled
    assert not any(13 in lc.reachable[s] for s in lc.statuses)
    assert lc.label(10) == "10 (completed)" and lc.label(99) == "99 (not in the contract)"


def test_docs_lifecycle_differs_where_the_docs_do() -> None:
    docs = load_lifecycle(contracts_dir() / "lifecycle-docs.yaml")
    assert (docs.completed, docs.failed, docs.cancelled) == (9, 10, 11)
    assert docs.statuses[8] == "uploading" and 0 not in docs.statuses


def test_limits() -> None:
    limits = load_limits()
    assert {name: g.limit for name, g in limits.groups.items()} == {"run": 100, "get": 1000, "upload": 50}
    assert limits.window_seconds == 60
    assert limits.group_of("post", "/apps/run") == "run"
    assert limits.group_of("GET", "/tasks/{id}/stream") == "get"
    assert limits.group_of("PUT", "/upload/{token}") is None
