"""A target that echoes the caller's key (whole, and cut to a prefix) in headers, bodies and errors:
no file of the run folder and no line on stdout or stderr may hold the key or an 8+ character prefix."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.files import folder_texts
from tests.test_cli import harness

KEY = "inf_EchoedKeyABCDEFGHIJKLMNOP"
SECOND = "inf_SecondKeyQRSTUVWXYZ012345"


class _Echo(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _send(self, status: int, body: object, content_type: str = "application/json") -> None:
        token = self.headers.get("Authorization", "").removeprefix("Bearer ")
        data = json.dumps(body).replace("TOKEN", token).replace("PREFIX", token[:12]).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-RateLimit-Remaining", token)  # not an integer: recorded as raw text
        self.send_header("X-RateLimit-Limit", token[:10])
        self.send_header("X-Echo", token)
        self.end_headers()
        self.wfile.write(data)

    def _task(self) -> dict[str, object]:
        return {"id": "task_1", "status": 10, "output": {"echo": "TOKEN"}, "error": None,
                "updated_at": "2026-01-01T00:00:00Z", "logs": ["key PREFIX..."]}

    def do_GET(self) -> None:
        if self.path.startswith("/tasks?"):
            self._send(200, {"success": True, "data": [], "messages": ["hello TOKEN"]})
        elif self.path.startswith("/tasks/task_1/status"):
            self._send(200, {"success": True, "data": {"status": 10}, "messages": []})
        elif self.path.startswith("/tasks/task_1"):
            self._send(200, {"success": True, "data": self._task(), "messages": []})
        else:
            problem = {"type": "about:blank", "title": "Not found", "status": 404,
                       "detail": "no such thing for PREFIX", "error": {"code": "x", "message": "TOKEN"}}
            self._send(404, problem, "application/problem+json")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(length)
        if self.path == "/apps/run":
            self._send(200, {"success": True, "data": self._task(), "messages": []})
        else:
            self.do_GET()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def echo_target() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_no_key_or_key_prefix_in_any_output(echo_target: str, tmp_path: Path) -> None:
    result = harness("check", "--suite", "smoke", "--suite", "lifecycle", "--suite", "load",
                     "--duration", "2s", "--users", "2", "--base-url", echo_target,
                     "--api-key", KEY, "--api-key", SECOND, "--tasks", "2", "--clients", "2",
                     "--deadline", "3", "--out", str(tmp_path / "out"), cwd=tmp_path, timeout=180)
    assert result.returncode in (1, 4), result.stdout + result.stderr
    (run_dir,) = (tmp_path / "out").iterdir()
    texts = {"stdout": result.stdout, "stderr": result.stderr}
    texts.update(folder_texts(run_dir))
    assert any("X-Echo" in t or "***" in t for t in texts.values()), "the echoes reached no output"
    for where, text in texts.items():
        for key in (KEY, SECOND):
            assert key[:8] not in text, f"a key prefix is in {where}"
