"""Answers that never end, for the httpx clients: a body past the cap, a stream line that never
ends, an SSE stream with CR-only line ends. Each ends at its cap or deadline, with its reason."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from harness.checks.agents import Conversation
from harness.net.bounded import READ_CAP, bounded_request
from harness.net.chats import ChatSession
from harness.net.client import ApiClient
from harness.net.decoders import MAX_LINE
from tests.hostile.servers import Request, drip, flood, raw_server, send_all

DONE = json.dumps({"data": {"id": "t1", "status": 10}, "fields": ["status"]}).encode()


def _serve(conn: socket.socket, request: Request, stop: threading.Event) -> None:
    if request.path.endswith("/stream") and "event-stream" in request.headers.get("accept", ""):
        send_all(conn, b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"
                       b"data: " + DONE + b"\r\r")
        drip(conn, stop, b":\r", every_s=0.2)  # comments, CR-only too, and never the end
    elif request.path.endswith("/stream"):
        send_all(conn, b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n\r\n")
        flood(conn, stop, b"x" * 65536)  # one line, never ended
    else:
        send_all(conn, f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                       f"{READ_CAP * 4}\r\n\r\n".encode())
        flood(conn, stop, b" " * 65536)


@pytest.fixture
def target() -> Iterator[str]:
    with raw_server(_serve) as url:
        yield url


def test_a_body_past_the_cap_is_not_read_further(target: str) -> None:
    started = time.monotonic()
    with httpx.Client() as client, pytest.raises(httpx.ReadError, match=f"passed {READ_CAP} bytes"):
        bounded_request(client, "GET", f"{target}/tasks/t1", 10.0)
    assert time.monotonic() - started < 5


def test_an_endless_ndjson_line_is_cut_and_cr_only_sse_is_decoded(target: str) -> None:
    with ApiClient(target, "inf_huge_answers_key") as client:
        started = time.monotonic()
        ndjson = client.read_stream("t1", "ndjson", 2.0)
        sse = client.read_stream("t1", "sse", 0.5)
        took = time.monotonic() - started
    reasons = [t.event.reason for t in ndjson.events if t.event.reason]
    assert reasons and reasons[0] == f"line longer than {MAX_LINE} bytes (the rest is skipped)"
    assert ndjson.timed_out or ndjson.error is None
    assert sse.updates and sse.updates[0]["data"]["status"] == 10 and sse.timed_out
    assert took < 8, took


def test_a_chat_stream_past_its_cap_is_not_read_further(target: str) -> None:
    # The chat reader (agents suite, lifecycle chats, smoke) stops at the decoder's stream cap
    # instead of reading an endless line until its deadline.
    session = ChatSession(target, "inf_hostile_key_123456", 5.0)
    conv = Conversation("endless", "chat_1")
    started = time.monotonic()
    try:
        status = session.read_stream("chat_1", conv, started, 30.0, lambda _event: None)
    finally:
        session.close()
    assert status == 200 and not conv.closed_by_server and conv.events == []
    assert time.monotonic() - started < 15, "read past the cap until the deadline"
