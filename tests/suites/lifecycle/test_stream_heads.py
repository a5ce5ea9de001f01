"""One rule for stream heads in the lifecycle's and the chats' stream readers (harness/net/bounded.
unanswered): a head that never came is indeterminate (counted, never a finding, never a crash); a
stream cut after its head is a finding. Raw loopback servers, half-second deadlines."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.checks.agents import Conversation, check_conversation
from harness.checks.lifecycle import check_history
from harness.contract import load_chat_lifecycle, load_lifecycle
from harness.history import HistoryWriter, read_history
from harness.net.chats import ChatRecorder, ChatSession, foreign_probes
from harness.net.client import ApiClient
from harness.net.recording import RecordingClient
from tests.hostile.servers import Request, raw_server, send_all

KEY = "inf_stream_heads_key_123"
CHATS = load_chat_lifecycle()


def _silent(conn: socket.socket, _request: Request, stop: threading.Event) -> None:
    """Reads the request and never answers: no head, until the client leaves."""
    conn.settimeout(0.05)
    while not stop.is_set():
        try:
            if conn.recv(1) == b"":
                return
        except TimeoutError:
            continue


def _chunk(line: dict[str, object]) -> bytes:
    data = (json.dumps(line) + "\n").encode()
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _cut(conn: socket.socket, request: Request, _stop: threading.Event) -> None:
    """A 200 NDJSON head and one line showing the work going on, then the connection closes
    without the chunked body's end."""
    if request.path.startswith("/chats/"):
        chat = {"id": "chat_x", "status": "busy", "active_run": {"id": "run_1", "state": "working"}}
        line: dict[str, object] = {"event": "chats", "data": chat}
    else:
        line = {"data": {"id": "task_x", "status": 6, "output": None, "error": None}, "fields": ["status"]}
    send_all(conn, b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n" + _chunk(line))
    time.sleep(0.05)


@pytest.fixture
def silent_url() -> Iterator[str]:
    with raw_server(_silent) as url:
        yield url


@pytest.fixture
def cut_url() -> Iterator[str]:
    with raw_server(_cut) as url:
        yield url


def _task_stream(url: str, history_path: Path) -> None:
    with HistoryWriter(history_path) as history, ApiClient(url, KEY, timeout=0.5) as api:
        RecordingClient(api, history, "c1", "key1").stream("task_x", "ndjson", 0.5)


def test_a_task_stream_without_a_head_is_indeterminate(silent_url: str, tmp_path: Path) -> None:
    path = tmp_path / "obs.jsonl"
    started = time.monotonic()
    _task_stream(silent_url, path)
    assert time.monotonic() - started < 3.0
    [obs] = list(read_history(path))
    assert obs.recv_ns is None and obs.outcome == "timeout" and obs.http is None
    report = check_history(read_history(path), load_lifecycle())
    assert report.findings == [] and report.metrics["indeterminate"] == 1


def test_a_task_stream_cut_after_its_head_is_a_finding(cut_url: str, tmp_path: Path) -> None:
    path = tmp_path / "obs.jsonl"
    _task_stream(cut_url, path)
    kinds = [(o.kind, o.status) for o in read_history(path)]
    assert kinds == [("update", 6), ("close", None)]
    report = check_history(read_history(path), load_lifecycle())
    assert {f.check for f in report.findings} == {"LC-STREAM-NO-TERMINAL"}


def test_a_chat_stream_without_a_head_is_indeterminate(silent_url: str, tmp_path: Path) -> None:
    path = tmp_path / "obs.jsonl"
    conv = Conversation("silent", "chat_x")
    with HistoryWriter(path) as history:
        session = ChatSession(silent_url, KEY, 0.3, ChatRecorder(history, "chats/t", "key2"))
        try:
            assert session.read_stream("chat_x", conv, time.monotonic(), 0.3, lambda _e: None) is None
            # Another key's probes that get no answer are not statuses: no AG-ISOLATION from them.
            foreign_probes(session, conv)
        finally:
            session.close()
    assert conv.events == [] and not conv.closed_by_server and conv.foreign == {}
    assert session.indeterminate == ["GET /chats/{id}/stream", "GET /chats/{id}", "GET /chats/{id}/stream",
                                     "POST /chats/{id}/stop", "POST /tools/{id}"]
    assert check_conversation(conv, CHATS) == []
    observations = list(read_history(path))
    assert {(o.channel, o.outcome, o.recv_ns) for o in observations} == {("chat", "timeout", None)}
    assert observations[0].extra == {"request": "GET /chats/{id}/stream", "chat": "chat_x",
                                     "error": "ReadTimeout"}
    report = check_history(read_history(path), load_lifecycle())
    assert report.findings == [] and report.metrics["indeterminate"] == 5
    assert KEY not in path.read_text()


def test_a_chat_stream_cut_after_its_head_is_a_finding(cut_url: str) -> None:
    conv = Conversation("cut", "chat_x")
    session = ChatSession(cut_url, KEY, 0.5)
    try:
        assert session.read_stream("chat_x", conv, time.monotonic(), 0.5, lambda _e: None) == 200
    finally:
        session.close()
    assert conv.closed_by_server and [e.event for e in conv.events] == ["chats"]
    assert session.indeterminate == []
    assert {issue.check for issue in check_conversation(conv, CHATS)} == {"AG-STREAM-END"}
