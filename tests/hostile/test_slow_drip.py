"""A target that sends its answer one byte at a time cannot hold the harness: it ends within its
deadline, with one line, no traceback and no key."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.net import deadline
from harness.net.bounded import CutAnswer, bounded_request
from tests.hostile.servers import Request, drip, raw_server, send_all
from tests.test_cli import harness


def _headers_then_drip(conn: socket.socket, _request: Request, stop: threading.Event) -> None:
    send_all(conn, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
    drip(conn, stop)


@pytest.fixture
def drip_url() -> Iterator[str]:
    """Answers every request with headers, then one body byte a second, forever."""
    with raw_server(_headers_then_drip) as url:
        yield url


def test_the_harness_ends_within_its_deadline(drip_url: str, tmp_path: Path) -> None:
    started = time.monotonic()
    result = harness("check", "--suite", "smoke", "--base-url", drip_url, "--api-key", "inf_drip_key_123456",
                     cwd=tmp_path, timeout=60)
    took = time.monotonic() - started
    assert result.returncode == 3 and "took more than" in result.stderr, result.stderr
    assert took < 30, f"took {took:.1f} s"  # the preflight's 10 s deadline, plus start-up
    assert "Traceback" not in result.stderr and "inf_drip" not in result.stdout + result.stderr


def test_a_bounded_request_stops_at_its_deadline(drip_url: str) -> None:
    with httpx.Client() as client:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            bounded_request(client, "GET", drip_url + "/", 2.0)
        assert time.monotonic() - started < 6


def test_a_drip_the_suite_deadline_cuts_short_ends_the_suite_not_as_a_cut_answer(drip_url: str) -> None:
    # The suite's deadline, not the target, ended the read: DeadlineExceeded (the suite's -DEADLINE
    # finding), never CutAnswer, which a suite would take for a wrong answer or a crash.
    deadline.set_deadline(time.monotonic() + 1.0, "suite", 1.0)
    try:
        with httpx.Client() as client, pytest.raises(deadline.DeadlineExceeded):
            bounded_request(client, "GET", drip_url + "/", 30.0)
    finally:
        deadline.set_deadline(None)
    with httpx.Client() as client, pytest.raises(CutAnswer):  # without a deadline: a cut answer
        bounded_request(client, "GET", drip_url + "/", 1.0)
