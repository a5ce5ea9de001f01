"""Task streams byte by byte: NDJSON and SSE framing, snapshot first, terminal last, cadence."""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

import httpx

from harness.net.client import ApiClient
from harness.net.reference import ReferenceServer
from tests.conftest import StartServer
from tests.server.polling import wait_until

TERMINAL = {10, 11, 12, 13}


def start(client: ApiClient, body: dict[str, Any]) -> str:
    response = client.run(body)
    assert response.status_code == 200, response.text
    return str(response.json()["data"]["id"])


def read_raw(url: str, key: str, task_id: str, accept: str | None,
             deadline: float = 20.0) -> tuple[httpx.Response, list[tuple[float, bytes]]]:
    """Read a stream chunk by chunk, stamping each chunk with its arrival time."""
    headers = {"Authorization": f"Bearer {key}"}
    if accept is not None:
        headers["Accept"] = accept
    chunks: list[tuple[float, bytes]] = []
    end = time.monotonic() + deadline
    with httpx.stream("GET", f"{url}/tasks/{task_id}/stream", headers=headers, timeout=deadline) as resp:
        for chunk in resp.iter_raw():
            chunks.append((time.monotonic(), chunk))
            assert time.monotonic() < end, "stream did not close in time"
    return resp, chunks


def ndjson_lines(chunks: list[tuple[float, bytes]]) -> list[bytes]:
    raw = b"".join(c for _, c in chunks)
    assert raw.endswith(b"\n"), "last line must be newline-terminated"
    return raw.split(b"\n")[:-1]


def test_ndjson_stream_framing(server: ReferenceServer, client: ApiClient) -> None:
    task_id = start(client, {"app": "infsh/sleep", "input": {"seconds": 10}})  # 0.5 s at speed 20
    resp, chunks = read_raw(server.url, server.keys[0], task_id, "application/x-ndjson")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/x-ndjson"  # no charset: requests splits on it
    assert "content-encoding" not in resp.headers
    lines = ndjson_lines(chunks)
    assert all(isinstance(json.loads(line), dict) for line in lines)
    assert b'{"type":"heartbeat"}' in lines
    updates = [json.loads(line) for line in lines if json.loads(line) != {"type": "heartbeat"}]
    first, last = updates[0], updates[-1]
    assert set(first) == {"data", "fields"} and set(first["fields"]) == set(first["data"])
    assert first["data"]["id"] == task_id and first["data"]["status"] < 10
    statuses = [u["data"]["status"] for u in updates]
    assert statuses == sorted(statuses) and last["data"]["status"] == 10
    assert [s for s in statuses if s in TERMINAL] == [10]
    assert last["data"]["output"] == {"slept": 10}  # the full task rides in the terminal update
    assert all("status" in u["fields"] for u in updates[1:] if u["data"]["status"] == 10)


def test_ndjson_is_ascii_with_line_separators_escaped(server: ReferenceServer, client: ApiClient) -> None:
    message = "line\u2028sep\u2029 \u00e9\u0085"
    task_id = start(client, {"app": "infsh/echo", "input": {"message": message}})
    _, chunks = read_raw(server.url, server.keys[0], task_id, "application/x-ndjson")
    lines = ndjson_lines(chunks)
    for line in lines:
        line.decode("ascii")  # raw U+2028/U+2029/U+0085 would be split by requests.iter_lines
    assert b"\\u2028" in lines[-1] and b"\\u2029" in lines[-1] and b"\\u0085" in lines[-1]
    assert json.loads(lines[-1])["data"]["output"] == {"message": message}


def test_sse_stream_framing(server: ReferenceServer, client: ApiClient) -> None:
    task_id = start(client, {"app": "infsh/sleep", "input": {"seconds": 10}})  # 0.5 s at speed 20
    resp, chunks = read_raw(server.url, server.keys[0], task_id, "text/event-stream")
    assert resp.headers["content-type"].startswith("text/event-stream")
    raw = b"".join(c for _, c in chunks)
    assert raw.endswith(b"\n\n")
    frames = raw.split(b"\n\n")[:-1]
    assert b": heartbeat" in frames  # 0.2 s heartbeats during a 0.5 s task
    ids = []
    statuses = []
    for frame in frames:
        if frame == b": heartbeat":
            continue
        id_line, data_line = frame.split(b"\n")
        assert id_line.startswith(b"id: ") and data_line.startswith(b"data: ")
        ids.append(int(id_line[4:]))
        statuses.append(json.loads(data_line[6:])["data"]["status"])
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert statuses[-1] == 10 and statuses.count(10) == 1


def test_default_format_is_ndjson(server: ReferenceServer, client: ApiClient) -> None:
    task_id = start(client, {"app": "infsh/echo", "input": {"message": "d"}})
    for accept in (None, "*/*", "application/json", "text/event-stream, application/x-ndjson"):
        resp, _ = read_raw(server.url, server.keys[0], task_id, accept)
        assert resp.headers["content-type"] == "application/x-ndjson", accept


def test_finished_task_stream_is_one_snapshot(server: ReferenceServer, client: ApiClient) -> None:
    task_id = start(client, {"app": "infsh/echo", "input": {"message": "f"}})
    wait_until(lambda: client.get_task(task_id).json()["data"]["status"] == 10, f"task {task_id} completing")
    _, chunks = read_raw(server.url, server.keys[0], task_id, "application/x-ndjson")
    lines = ndjson_lines(chunks)
    assert len(lines) == 1 and json.loads(lines[0])["data"]["status"] == 10


def test_heartbeat_cadence(server: ReferenceServer, client: ApiClient) -> None:
    task_id = start(client, {"app": "infsh/sleep", "input": {"seconds": 40}})  # ~2 s at speed 20
    _, chunks = read_raw(server.url, server.keys[0], task_id, "application/x-ndjson")
    beats = [t for t, c in chunks if c == b'{"type":"heartbeat"}\n']
    assert len(beats) >= 5
    times = [t for t, _ in chunks]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert max(gaps) < 0.2 + 0.25, gaps  # the interval plus scheduling slack


def test_non_heartbeat_update_at_least_every_progress_interval(start_server: StartServer) -> None:
    # Speed 1: the 3 s sleep is one silent step; only the progress keep-alive can break it.
    with start_server(speed=1.0, extra_args=["--heartbeat", "0.1", "--progress-interval", "0.5"]) as srv, \
            ApiClient(srv.url, srv.keys[0]) as api:
        task_id = start(api, {"app": "infsh/sleep", "input": {"seconds": 3}})
        _, chunks = read_raw(srv.url, srv.keys[0], task_id, "application/x-ndjson")
    updates = [(t, json.loads(c)) for t, c in chunks if not c.startswith(b'{"type"')]
    running = [t for t, u in updates if u["data"]["status"] == 7]
    assert len(running) >= 5  # 3 s of running, a keep-alive update every 0.5 s
    gaps = [b - a for a, b in itertools.pairwise(running)]
    assert max(gaps) < 0.5 + 0.25, gaps
    assert any(u["fields"] == [] for _, u in updates)  # keep-alive updates name no changed field


def test_cancel_reaches_a_live_stream(server: ReferenceServer, client: ApiClient) -> None:
    task_id = start(client, {"app": "infsh/sleep", "input": {"seconds": 600}})
    with httpx.stream("GET", f"{server.url}/tasks/{task_id}/stream", timeout=10,
                      headers={"Authorization": f"Bearer {server.keys[0]}"}) as resp:
        lines = resp.iter_lines()
        assert json.loads(next(lines))["data"]["id"] == task_id
        assert client.cancel(task_id).status_code == 200
        statuses = [json.loads(line)["data"]["status"] for line in lines if "heartbeat" not in line]
    assert statuses[-2:] == [8, 12]
