"""Faults whose checks arrive with the rate-limit and load suites: each shows its effect on the wire."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from harness.net.client import ApiClient
from harness.net.reference import ReferenceServer
from harness.server.faults import FAULTS, Fault, Faults, UnknownFault
from tests.conftest import StartServer


def wait_for_window_start(window: float) -> None:
    time.sleep(window - (time.time() % window) + 0.02)


def burst(api: ApiClient, count: int) -> list[httpx.Response]:
    return [api.create_file("f", "text/plain", 1) for _ in range(count)]


def test_over_admit_admits_one_more(start_server: StartServer) -> None:
    with start_server(faults=["over-admit"], rate_window=5.0) as srv, ApiClient(srv.url, srv.keys[0]) as api:
        wait_for_window_start(5.0)
        codes = [r.status_code for r in burst(api, 52)]
    assert codes.count(200) == 51 and codes[-1] == 429


def test_remaining_not_counting(start_server: StartServer) -> None:
    with start_server(faults=["remaining-not-counting"]) as srv, ApiClient(srv.url, srv.keys[0]) as api:
        assert {r.headers["X-RateLimit-Remaining"] for r in burst(api, 5)} == {"50"}


def test_reset_in_past(start_server: StartServer) -> None:
    with start_server(faults=["reset-in-past"]) as srv, ApiClient(srv.url, srv.keys[0]) as api:
        assert int(api.workers().headers["X-RateLimit-Reset"]) < time.time()


def test_shared_bucket(start_server: StartServer) -> None:
    with start_server(faults=["shared-bucket"], rate_window=5.0) as srv, \
            ApiClient(srv.url, srv.keys[0]) as first, ApiClient(srv.url, srv.keys[1]) as second:
        wait_for_window_start(5.0)
        burst(first, 10)
        assert second.create_file("f", "text/plain", 1).headers["X-RateLimit-Remaining"] == "39"


def test_rate_limited_side_effect(start_server: StartServer) -> None:
    with start_server(faults=["rate-limited-side-effect"], rate_window=5.0) as srv, \
            ApiClient(srv.url, srv.keys[0]) as api:
        wait_for_window_start(5.0)
        codes = [api.run({"app": "infsh/echo", "input": {"message": "x"}}).status_code for _ in range(101)]
        uploads = [r.status_code for r in burst(api, 51)]
        tasks = api.http.get("/tasks", params={"limit": 1000}).json()["data"]
        files = api.http.get("/files").json()["data"]
    # The refused run and the refused upload still left a task and a file behind.
    assert codes[-1] == 429 and len(tasks) == 101
    assert uploads[-1] == 429 and len(files) == 51


def fastest_read(srv: ReferenceServer, reads: int = 5) -> float:
    """The quickest of a few `GET /tasks/{id}` (the minimum shrugs off a busy machine)."""
    with ApiClient(srv.url, srv.keys[0]) as api:
        task_id = api.run({"app": "infsh/echo", "input": {"message": "x"}}).json()["data"]["id"]
        times = []
        for _ in range(reads):
            started = time.monotonic()
            assert api.get_task(task_id).status_code == 200
            times.append(time.monotonic() - started)
    return min(times)


def test_slow_reads(start_server: StartServer) -> None:
    with start_server() as clean, start_server(faults=["slow-reads"]) as slow:
        baseline, slowed = fastest_read(clean), fastest_read(slow)
    # The same read without the fault is the yardstick: the fault adds its 50 ms on top.
    assert slowed - baseline >= 0.04, (baseline, slowed)


# -- the fault list itself -----------------------------------------------------------------


def test_every_fault_is_documented() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "faults.md").read_text()
    for name in FAULTS:
        assert f"`{name}`" in text, name


def test_every_member_is_described_under_its_name() -> None:
    assert list(FAULTS) == list(Fault)
    assert all(FAULTS[fault] for fault in Fault)
    assert Fault("slow-reads") is Fault.SLOW_READS and str(Fault.SLOW_READS) == "slow-reads"


def test_unknown_names_fail_loudly() -> None:
    with pytest.raises(UnknownFault, match="slow-read"):
        Faults(["slow-read"])
    faults = Faults(["slow-reads"])
    assert Fault.SLOW_READS in faults and "slow-reads" in faults and Fault.NO_ENVELOPE not in faults
    with pytest.raises(UnknownFault):
        _ = "slow-read" in faults  # a typo is an error, never quietly "off"
