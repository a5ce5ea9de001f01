"""A target that answers every request with a redirect to another origin (127.0.0.2): each
client of the harness takes the redirect as an answer, and nothing -- no request, no key --
reaches the other host. (The Locust users: tests/suites/load/transport_probe.py.)"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import yaml

from harness.checks.ratelimit import HeaderNames
from harness.checks.responses import OperationTable, RuleSet
from harness.contract import contracts_dir, load_lifecycle, load_limits
from harness.net.client import ApiClient
from harness.net.lanes import Lane, Target
from harness.suites.contract.fuzz import _PacedSession
from harness.suites.contract.traffic import Collector, Pacer, Traffic
from tests.hostile.servers import Request, answer, raw_server, send_all

KEY = "inf_RedirectKeyABCDEFGHIJK"


@pytest.fixture
def origins() -> Iterator[tuple[str, list[str]]]:
    """(the target, the other host's log): the target 307s every request to the other host."""
    hits: list[str] = []
    lock = threading.Lock()

    def other(conn: socket.socket, request: Request, _stop: threading.Event) -> None:
        with lock:
            hits.append(f"{request.method} {request.path} {request.headers.get('authorization')}")
        send_all(conn, answer(200, b"{}", {"Connection": "close"}))

    with raw_server(other, host="127.0.0.2") as elsewhere:
        def target(conn: socket.socket, request: Request, _stop: threading.Event) -> None:
            send_all(conn, answer(307, b"", {"Location": elsewhere + request.path}))

        with raw_server(target, keep_alive=True) as url:
            yield url, hits


def test_the_api_client_takes_a_redirect_as_its_answer(origins: tuple[str, list[str]]) -> None:
    url, hits = origins
    with ApiClient(url, KEY) as client:
        answers = [client.get_task("t1"), client.run({"app": "a", "input": {}}), client.workers()]
    assert [a.status_code for a in answers] == [307, 307, 307]
    assert hits == []
    # The control: a client that follows does reach the other host (so `hits` would show it).
    assert httpx.get(f"{url}/control", follow_redirects=True).status_code == 200
    assert hits == ["GET /control None"]


def test_a_rate_limit_lane_takes_a_redirect_as_its_answer(origins: tuple[str, list[str]]) -> None:
    url, hits = origins
    lane = Lane(Target.parse(url), KEY, "key1", "o", timeout=5.0)
    try:
        exchanges = [lane.send("GET", "/tasks?limit=1", None, "get", "burst", HeaderNames()),
                     lane.send("POST", "/files", b"{}", "upload", "burst", HeaderNames())]
    finally:
        lane.close()
    assert [e.http for e in exchanges] == [307, 307]
    assert hits == []


def test_the_contract_session_takes_a_redirect_as_its_answer(origins: tuple[str, list[str]]) -> None:
    url, hits = origins
    limits = load_limits()
    schema = yaml.safe_load((contracts_dir() / "openapi.yaml").read_text())
    rules = RuleSet(load_lifecycle(), limits, OperationTable.from_openapi(schema))
    traffic = Traffic(url, [KEY], rules, Collector([KEY]),
                      Pacer({n: g.limit for n, g in limits.groups.items()}, limits.window_seconds),
                      stop_at=time.monotonic() + 30, max_tasks=5)
    with _PacedSession(traffic, 5.0, 5.0) as session:
        session.headers["Authorization"] = f"Bearer {KEY}"
        answers = [session.request("GET", f"{url}/tasks/t1"),
                   session.request("POST", f"{url}/apps/run", json={"app": "a", "input": {}})]
    assert [a.status_code for a in answers] == [307, 307]
    assert hits == []
