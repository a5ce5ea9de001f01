"""The load suite against a target whose answers never end: a stream line without a newline, a
body past the cap, answers dripping a byte a second, an SSE stream with CR-only line ends that
stays open (a reader splitting on LF alone would never see its terminal update). The suite
ends within its deadlines with findings naming each cut, no traceback, no key."""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time
from pathlib import Path

from harness.net.bounded import READ_CAP
from tests.hostile.servers import Request, answer, drip, flood, raw_server, send_all
from tests.test_cli import harness

KEY = "inf_LoadReadsKeyABCDEFGHIJ"
_ids = itertools.count(1)


def _envelope(data: object) -> bytes:
    return json.dumps({"success": True, "data": data, "messages": []}).encode()


def _target(conn: socket.socket, request: Request, stop: threading.Event) -> None:
    path = request.path.split("?", 1)[0]
    parts = [p for p in path.split("/") if p]
    stream_head = "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nConnection: close\r\n\r\n"
    if request.method == "POST" and path == "/apps/run":
        task = {"id": f"task_{next(_ids)}", "status": 1}
        send_all(conn, answer(200, _envelope(task), {"Connection": "close"}))
    elif request.method == "GET" and len(parts) == 3 and parts[2] == "stream":
        if "event-stream" in request.headers.get("accept", ""):
            # CR-only line ends (valid SSE): the terminal update, then the stream stays open.
            done = json.dumps({"data": {"id": parts[1], "status": 10, "output": {}},
                               "fields": ["status"]}).encode()
            send_all(conn, stream_head.format("text/event-stream").encode()
                     + b"data: " + done + b"\r\r")
            drip(conn, stop, b":\r")
        else:  # one line that never ends
            send_all(conn, stream_head.format("application/x-ndjson").encode())
            flood(conn, stop, b"x" * 65536)
    elif request.method == "GET" and len(parts) == 2 and parts[0] == "tasks":  # past the cap
        send_all(conn, f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                       f"{READ_CAP * 2}\r\n\r\n".encode())
        flood(conn, stop, b" " * 65536)
    elif path == "/tasks" or path.endswith("/cancel"):  # the preflight's read and cancel
        send_all(conn, answer(200, _envelope([]), {"Connection": "close"}))
    else:  # /status, /files: headers, then a byte a second
        send_all(conn, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 9999\r\n\r\n")
        drip(conn, stop)


def test_the_load_suite_cuts_endless_huge_and_dripping_answers(tmp_path: Path) -> None:
    with raw_server(_target) as url:
        started = time.monotonic()
        result = harness("load", "--base-url", url, "--api-key", KEY, "--scenario", "mixed",
                         "--users", "10", "--duration", "1s", "--deadline", "2",
                         "--out", str(tmp_path / "out"), cwd=tmp_path, timeout=90)
        took = time.monotonic() - started
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    (run_dir,) = (tmp_path / "out").iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    load = results["suites"]["load"]
    findings = {f["check"]: f for f in results["findings"]}
    reasons = findings["LD-UNEXPECTED-ERRORS"]["evidence"]["reasons"]
    assert "stream_ndjson: stream cut: line longer than 1048576 bytes (the rest is skipped)" in reasons
    assert f"get_task: answer longer than {READ_CAP} bytes (not read further)" in reasons
    assert "status: answer took more than 2 s (not read further)" in reasons, reasons
    # The CR-only SSE stream was decoded: its terminal update was seen.
    assert load["metrics"]["latency_ms"]["sse.terminal"]["count"] > 0, load["metrics"]["latency_ms"]
    assert took < 40, f"took {took:.1f} s"
    texts = {"output": output, **{str(p): p.read_text(errors="replace")
                                  for p in run_dir.rglob("*") if p.is_file()}}
    exceptions = (run_dir / "load" / "mixed" / "locust_exceptions.csv").read_text()
    assert exceptions.strip() == "Count,Message,Traceback,Nodes", exceptions  # no user raised
    for where, text in texts.items():
        assert "Traceback (most recent" not in text, where
        assert KEY[:8] not in text, where
