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

from harness.net.bounded import bounded_request
from tests.test_cli import harness


@pytest.fixture
def drip() -> Iterator[str]:
    """Answers every request with headers, then one body byte a second, forever."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 100000\r\n\r\n")
            while not stop.is_set():
                try:
                    conn.sendall(b" ")
                except OSError:
                    return
                stop.wait(1.0)

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        listener.close()


def test_the_harness_ends_within_its_deadline(drip: str, tmp_path: Path) -> None:
    started = time.monotonic()
    result = harness("check", "--suite", "smoke", "--base-url", drip, "--api-key", "inf_drip_key_123456",
                     cwd=tmp_path, timeout=60)
    took = time.monotonic() - started
    assert result.returncode == 3 and "took more than" in result.stderr, result.stderr
    assert took < 30, f"took {took:.1f} s"  # the preflight's 10 s deadline, plus start-up
    assert "Traceback" not in result.stderr and "inf_drip" not in result.stdout + result.stderr


def test_a_bounded_request_stops_at_its_deadline(drip: str) -> None:
    with httpx.Client() as client:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            bounded_request(client, "GET", drip + "/", 2.0)
        assert time.monotonic() - started < 6
