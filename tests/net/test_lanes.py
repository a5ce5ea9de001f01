"""Rate-limit lanes: one deadline per whole answer (a drip of the head or the body cannot hold a
lane), the size cap, and keep-alive answers read as before."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from harness.checks.ratelimit import HeaderNames
from harness.net.lanes import Lane, Target
from tests.hostile.servers import Request, answer, drip, raw_server, send_all

BODY = b'{"success":true,"data":[],"messages":[]}'


def _serve(conn: socket.socket, request: Request, stop: threading.Event) -> None:
    if request.path == "/body-drip":
        send_all(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        drip(conn, stop, every_s=0.1)
    elif request.path == "/head-drip":
        drip(conn, stop, b"H", every_s=0.1)  # a status line that never ends
    elif request.path == "/close":
        send_all(conn, answer(200, BODY, {"Connection": "close"}))
    else:
        send_all(conn, answer(200, BODY, {"X-RateLimit-Remaining": "7"}))


def _send(lane: Lane, path: str) -> tuple[object, float]:
    started = time.monotonic()
    exchange = lane.send("GET", path, None, "get", "probe", HeaderNames())
    return exchange, time.monotonic() - started


@pytest.mark.parametrize("path", ["/body-drip", "/head-drip"])
def test_a_dripping_answer_ends_at_the_lane_deadline(path: str) -> None:
    with raw_server(_serve, keep_alive=True) as url:
        lane = Lane(Target.parse(url), "inf_lane_key", "key1", "o", timeout=0.5)
        exchange, took = _send(lane, path)
        lane.close()
    assert exchange.error == "TimeoutError: the answer took more than 0.5 s", exchange  # type: ignore[attr-defined]
    assert 0.45 < took < 1.5, took  # the drip's 0.1 s reads each renewed a per-read timeout before


def test_keep_alive_and_closing_answers_are_read_whole() -> None:
    with raw_server(_serve, keep_alive=True) as url:
        lane = Lane(Target.parse(url), "inf_lane_key", "key1", "o", timeout=0.5)
        first, _ = _send(lane, "/tasks")
        time.sleep(0.6)  # longer than the deadline: the next answer has its own
        second, _ = _send(lane, "/tasks")
        closing, _ = _send(lane, "/close")
        after, _ = _send(lane, "/tasks")
        lane.close()
    for exchange in (first, second, closing, after):
        assert exchange.http == 200 and exchange.body == BODY, exchange  # type: ignore[attr-defined]
    assert first.headers["x-ratelimit-remaining"] == "7"  # type: ignore[attr-defined]
