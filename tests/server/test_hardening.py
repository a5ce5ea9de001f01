"""The reference server against hostile clients: secrets in setups, big bodies, floods, slow peers."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from harness.net.client import ApiClient
from harness.net.reference import ReferenceServer
from harness.server.files import FileGone, FileStore
from tests.conftest import StartServer
from tests.server.test_api import assert_problem, data, run, wait_terminal

# -- item 10: /workers shows setups only as fingerprints --------------------------------------


def test_workers_show_another_keys_setup_only_as_a_fingerprint(start_server: StartServer) -> None:
    with start_server(extra_args=["--cloud-workers", "1", "--private-workers", "0"]) as srv, \
            ApiClient(srv.url, srv.keys[0]) as owner, ApiClient(srv.url, srv.keys[1]) as other:
        body = {"app": "infsh/echo", "setup": {"hf_token": "SECRET-OF-K1"}, "input": {"message": "m"}}
        wait_terminal(owner, run(owner, body)["id"])
        mine = data(owner.workers())[0]["warm"]["setup"]
        seen = other.workers()
        assert "SECRET-OF-K1" not in seen.text and "hf_token" not in seen.text
        theirs = data(seen)[0]["warm"]["setup"]
        assert set(theirs) == {"fingerprint"} and theirs != mine  # keyed per viewing key too
        # The owner's own equal setups show equal fingerprints, so its warmth stays comparable.
        wait_terminal(owner, run(owner, body)["id"])
        assert data(owner.workers())[0]["warm"]["setup"] == mine
        # The other key runs a right guess and a wrong one: neither fingerprint matches the one
        # it saw, so comparing confirms nothing.
        wait_terminal(other, run(other, body)["id"])
        right = data(other.workers())[0]["warm"]["setup"]
        wait_terminal(other, run(other, {**body, "setup": {"hf_token": "wrong"}})["id"])
        wrong = data(other.workers())[0]["warm"]["setup"]
        assert theirs not in (right, wrong) and right != wrong


# -- item 11: JSON bodies are capped ------------------------------------------------------------


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def forty_mb_setup(chunk: int = 64 * 1024) -> Iterator[bytes]:
    yield b'{"app": "infsh/echo", "input": {"message": "x"}, "setup": {"pad": "'
    for _ in range(40 * 1024 * 1024 // chunk):
        yield b"x" * chunk
    yield b'"}}'


def test_big_json_bodies_are_413_without_being_held(start_server: StartServer) -> None:
    with start_server() as srv, ApiClient(srv.url, srv.keys[0]) as api:
        before = rss_mb(srv.process.pid)
        whole = b"".join(forty_mb_setup())
        answers = [api.http.post("/apps/run", content=whole,
                                 headers={"Content-Type": "application/json"})]
        # Chunked, without Content-Length: the server must stop reading at the cap.
        answers += [api.http.post("/apps/run", content=forty_mb_setup(),
                                  headers={"Content-Type": "application/json"}) for _ in range(2)]
        answers.append(api.http.post("/files", content=whole,
                                     headers={"Content-Type": "application/json"}))
        for answer in answers:
            assert_problem(answer, 413, "payload_too_large")
        assert rss_mb(srv.process.pid) - before < 40, "the bodies were held"
        assert run(api, {"app": "infsh/echo", "input": {"message": "still serving"}})["id"]


# -- items 12 and 13: file floods and uploads racing eviction -----------------------------------


def create_files(api: ApiClient, count: int) -> httpx.Response:
    return api.http.post("/files", json={"files": [{"filename": f"f{i}.txt"} for i in range(count)]})


def uploaded_file(api: ApiClient, content: bytes) -> dict[str, Any]:
    record: dict[str, Any] = data(api.create_file("keep.txt", "text/plain", len(content)))[0]
    assert api.put_bytes(record["upload_url"], content, "text/plain").status_code == 200
    return record


def test_a_file_flood_cannot_evict_another_keys_files(start_server: StartServer) -> None:
    with start_server() as srv, ApiClient(srv.url, srv.keys[0]) as flooder, \
            ApiClient(srv.url, srv.keys[1]) as victim:
        kept = uploaded_file(victim, b"victim's bytes")
        problem = assert_problem(create_files(flooder, 20_000), 422, "validation_failed")
        assert problem["invalid_params"][0]["name"] == "body.files"
        first = data(create_files(flooder, 100))
        for _ in range(11):  # 1200 files: past the flooder's own quota of 1000
            assert create_files(flooder, 100).status_code == 200
        listed = {f["id"] for f in data(flooder.http.get("/files"))}
        assert len(listed) == 1000 and not listed & {f["id"] for f in first}
        assert [f["id"] for f in data(victim.http.get("/files"))] == [kept["id"]]
        assert victim.download(kept["uri"]).content == b"victim's bytes"


def test_an_upload_racing_its_files_eviction_is_not_counted(start_server: StartServer) -> None:
    with start_server() as srv, ApiClient(srv.url, srv.keys[0]) as api:
        doomed = data(api.create_file("doomed.bin", "application/octet-stream", 2))[0]
        started, release = threading.Event(), threading.Event()

        def slow_body() -> Iterator[bytes]:
            yield b"a"
            started.set()
            release.wait(10)
            yield b"b"

        with ThreadPoolExecutor(max_workers=1) as pool:
            upload = pool.submit(httpx.put, doomed["upload_url"], content=slow_body(), timeout=20)
            assert started.wait(10)
            for _ in range(10):  # the key's quota of 1000 files evicts the oldest: `doomed`
                assert create_files(api, 100).status_code == 200
            release.set()
            assert_problem(upload.result(), 404, "file_not_found")
        # The store still takes uploads (before: bytes of evicted files stayed counted).
        kept = uploaded_file(api, b"fine")
        assert api.download(kept["uri"]).content == b"fine"


def test_stored_bytes_always_match_the_files_held() -> None:
    store = FileStore(max_upload_bytes=100, max_files=10, max_total_bytes=250,
                      retention_seconds=60, max_files_per_key=4, max_bytes_per_key=150)
    records = [store.create(owner, "http://x", "f", None, None, None)
               for owner in ("a", "b") for _ in range(3)]
    for record in records:
        store.put(record, b"x" * 40)
    late = store.create("a", "http://x", "f", None, None, None)
    for _ in range(4):  # a's quota of 4 files evicts its oldest each time, `late` last
        store.create("a", "http://x", "f", None, None, None)
    assert late.id not in {r.id for r in store.owned("a", 99)}
    with pytest.raises(FileGone):
        store.put(late, b"y" * 40)
    held = [r for owner in ("a", "b") for r in store.owned(owner, 99)]
    assert store.total_bytes == sum(len(r.data or b"") for r in held)
    assert store.count_of("b") == 3 and store.bytes_of("b") == 120


# -- item 15: slow, silent and oversized requests -----------------------------------------------


def connect(url: str) -> socket.socket:
    host, port = url.rsplit("//", 1)[1].rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=30)


def read_until_closed(sock: socket.socket, trickle: bool = False) -> tuple[float, bytes]:
    """Seconds until the server closes `sock`, and what it sent; `trickle` sends a byte a second."""
    start, got = time.monotonic(), b""
    sock.settimeout(1.0 if trickle else 30)
    with sock:
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                sock.sendall(b"a")
                continue
            except ConnectionResetError:
                break
            if not chunk:
                break
            got += chunk
    return time.monotonic() - start, got


def test_slow_silent_and_oversized_requests_are_cut_off(start_server: StartServer) -> None:
    # The header deadline scaled down (the default is 10 s; `--header-timeout` sets it).
    with start_server(extra_args=["--header-timeout", "2"]) as srv, ThreadPoolExecutor(max_workers=2) as pool:
        silent = pool.submit(read_until_closed, connect(srv.url))
        slow = connect(srv.url)
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        trickling = pool.submit(read_until_closed, slow, True)
        big = connect(srv.url)
        big.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n")
        took, answer = read_until_closed(big)
        assert took < 2 and answer.startswith(b"HTTP/1.1 431 "), answer
        huge = connect(srv.url)
        with contextlib.suppress(OSError):  # the server may close before 1 MB is sent
            huge.sendall(b"GET /healthz HTTP/1.1\r\nX-Huge: " + b"a" * (1 << 20) + b"\r\n\r\n")
        took, answer = read_until_closed(huge)
        assert took < 2 and (not answer or answer.startswith(b"HTTP/1.1 431 ")), answer
        took, answer = silent.result()
        assert 1.5 < took < 5 and answer == b""  # the header deadline: 2 s here
        took, answer = trickling.result()
        assert 1.5 < took < 5 and answer.startswith(b"HTTP/1.1 408 "), answer
        assert httpx.get(f"{srv.url}/healthz").status_code == 200


# -- a body sent a byte at a time -----------------------------------------------------------------


def test_a_dripping_body_is_cut_off_with_408(start_server: StartServer) -> None:
    # 1 s, plus 1 s per MiB declared.
    with start_server(extra_args=["--body-timeout", "1"]) as srv, ApiClient(srv.url, srv.keys[0]) as api:
        record = data(api.create_file("drip.bin", "application/octet-stream", 100))[0]
        upload = urlsplit(record["upload_url"]).path
        heads = [f"PUT {upload} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n",
                 f"POST /apps/run HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {srv.keys[0]}\r\n"
                 "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"]
        with ThreadPoolExecutor(max_workers=2) as pool:
            socks = [connect(srv.url) for _ in heads]
            for sock, head in zip(socks, heads, strict=True):
                sock.sendall(head.encode())
            results = list(pool.map(lambda s: read_until_closed(s, True), socks))
        for took, answer in results:
            assert took < 4 and answer.startswith(b"HTTP/1.1 408 "), (took, answer)
            assert b'"request_timeout"' in answer and b"application/problem+json" in answer
        # A body that arrives on time is taken as before.
        stored = api.put_bytes(record["upload_url"], b"x" * 100, "application/octet-stream")
        assert stored.status_code == 200 and data(stored)["uploaded"] is True


# -- a stored content type is served only when it is a well-formed ASCII media type ---------------


def test_a_downloads_content_type_cannot_crash_or_split_the_answer(server: ReferenceServer) -> None:
    # Found by a random seed of the contract suite: a non-latin-1 content_type made the download 500.
    with ApiClient(server.url, server.keys[0]) as api:
        for stored, served in (("image/png", "image/png"),
                               ("text/plain; charset=utf-8", "text/plain; charset=utf-8"),
                               ("image/pngé", "application/octet-stream"),
                               ("text/plain\r\nX-Evil: 1", "application/octet-stream"),
                               ("nonsense", "application/octet-stream")):
            record = data(api.create_file("f.bin", stored, 3))[0]
            assert api.put_bytes(record["upload_url"], b"abc", "application/octet-stream").status_code < 300
            got = api.download(record["uri"])
            assert got.status_code == 200 and got.content == b"abc", stored
            assert got.headers["content-type"] == served and "x-evil" not in got.headers, stored
