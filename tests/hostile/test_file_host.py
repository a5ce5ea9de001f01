"""Upload URLs and file URIs on a host nobody allowed are not fetched: a finding names the host."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from tests.test_cli import harness


class _Storage(http.server.BaseHTTPRequestHandler):
    """The other host: any request that reaches it is a failure of the test."""

    hits: ClassVar[list[str]] = []

    def do_PUT(self) -> None:
        self.hits.append(f"PUT {self.path} {self.headers.get('Authorization')}")
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_PUT

    def log_message(self, *_: object) -> None:
        pass


def _api(storage: str) -> type[http.server.BaseHTTPRequestHandler]:
    class Api(http.server.BaseHTTPRequestHandler):
        def _send(self, status: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._send(200, {"success": True, "data": [], "messages": []})

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            files = [{"id": "file_1", "upload_url": f"{storage}/upload/1", "uri": f"{storage}/files/1"}]
            self._send(200, {"success": True, "data": files, "messages": []})

        def log_message(self, *_: object) -> None:
            pass
    return Api


@pytest.fixture
def servers() -> Iterator[tuple[str, str]]:
    storage = http.server.ThreadingHTTPServer(("127.0.0.2", 0), _Storage)
    storage_url = f"http://127.0.0.2:{storage.server_address[1]}"
    api = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _api(storage_url))
    for server in (storage, api):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    _Storage.hits = []
    try:
        yield f"http://127.0.0.1:{api.server_address[1]}", storage_url
    finally:
        for server in (storage, api):
            server.shutdown()
            server.server_close()


def test_an_upload_url_on_another_host_is_a_finding_not_a_request(servers: tuple[str, str],
                                                                    tmp_path: Path) -> None:
    api, _storage = servers
    # Only the file role: the smoke suite's upload check, nothing else to run.
    (tmp_path / "h.toml").write_text('[apps.file]\napp = "acme/thumb"\ninput = { image = "$FILE" }\n')
    result = harness("smoke", "--base-url", api, "--api-key", "inf_file_host_key", "--config",
                     str(tmp_path / "h.toml"), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert "ST-UPLOAD-ROUNDTRIP" in result.stdout, result.stdout + result.stderr
    assert "127.0.0.2 is neither the target's origin nor an allowed file host" in result.stdout
    assert _Storage.hits == [], "a request reached the host nobody allowed"


def test_an_allowed_file_host_is_used_without_the_key(servers: tuple[str, str], tmp_path: Path) -> None:
    api, _storage = servers
    (tmp_path / "h.toml").write_text('[apps.file]\napp = "acme/thumb"\ninput = { image = "$FILE" }\n')
    harness("smoke", "--base-url", api, "--api-key", "inf_file_host_key", "--config",
            str(tmp_path / "h.toml"), "--allow-file-host", "127.0.0.2", "--out", str(tmp_path / "out"),
            cwd=tmp_path)
    assert _Storage.hits and all(hit.endswith(" None") for hit in _Storage.hits), _Storage.hits
