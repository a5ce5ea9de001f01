"""The plain schemathesis CLI with the shipped configuration and hooks, against real servers.

The command is the one users run (contracts/README.md); only the target's settings are ours:
a 1 s rate window (no 429 at 40 requests/s) and a speed at which a run is still going when the
stateful phase cancels it.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.core.transport import STREAM_CUT_SHORT_ATTRIBUTE

from harness.net.reference import ReferenceServer, fresh_keys, reference_server
from harness.peers import schemathesis_hooks as hooks
from tests.peers.contract_ops import operation_names

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ROOT / "contracts" / "openapi.yaml"
CONFIG = ROOT / "contracts" / "schemathesis.toml"
CLI = Path(sys.executable).with_name("schemathesis")


def run_cli(server: ReferenceServer, workdir: Path, *extra: str) -> tuple[int, str]:
    """`schemathesis run` exactly as contracts/README.md gives it, plus `extra`."""
    command = [str(CLI), "--config-file", str(CONFIG), "run", str(CONTRACT), "--url", server.url,
               "-H", f"Authorization: Bearer {server.keys[0]}", "--checks", "all", "--max-examples", "20",
               "--rate-limit", "40/s", "--seed", "7", "--no-color", *extra]
    done = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=110)
    return done.returncode, done.stdout + done.stderr


def stateful_operations(report_dir: Path) -> dict[str, set[int]]:
    """Operation -> statuses answered in the stateful phase, from the NDJSON report."""
    reached: dict[str, set[int]] = {}
    for path in report_dir.glob("*.ndjson"):
        for line in path.read_text().splitlines():
            event = json.loads(line)
            finished = event.get("ScenarioFinished")
            if not finished or finished.get("phase") != "stateful":
                continue
            recorder = finished["recorder"]
            for case_id, node in recorder.get("cases", {}).items():
                answer = (recorder.get("interactions", {}).get(case_id) or {}).get("response") or {}
                label = f"{node['value']['method']} {node['value']['path']}"
                reached.setdefault(label, set()).add(answer.get("status_code", 0))
    return reached


@pytest.fixture(scope="module")
def clean() -> Iterator[ReferenceServer]:
    # The agent calls its tool within a millisecond, so the first read of a chat sees the call
    # (contracts/README.md, "Peer tools").
    with reference_server(fresh_keys(1), rate_window=1.0, speed=5.0,
                          extra_args=["--heartbeat", "0.5", "--agent-speed", "1000"]) as running:
        yield running


def test_plain_cli_passes_on_the_reference_server(clean: ReferenceServer, tmp_path: Path) -> None:
    code, out = run_cli(clean, tmp_path, "--report", "ndjson", "--report-dir", str(tmp_path / "report"))
    assert code == 0 and "failures" not in out.lower().split("summary", 1)[-1], out
    for warning in ("missing deserializers", "No links point"):
        assert warning not in out, out
    assert "Missing test data" not in out and "never reached" not in out, out
    reached = stateful_operations(tmp_path / "report")
    # Every operation, the agent run, the chat and the tool-call ones included, got past "not found"
    # while following the links (a delete of a task still running answers 409: reached, and refused
    # as the contract says; so does a tool call that no longer waits).
    assert set(operation_names()) == set(reached) and len(reached) == 21, sorted(reached)
    assert all(reached[op] - {0, 404, 429} for op in reached), reached
    tool_calls = {op: reached[op] for op in reached if op.startswith("POST /tools/")}
    assert all(any(200 <= code < 300 for code in codes) for codes in tool_calls.values()), tool_calls


@pytest.mark.parametrize(("fault", "check"), [
    ("stream-status-regression", "CT-STREAM-ORDER"),  # only the hooks' stream check sees it
    ("no-envelope", "CT-ENVELOPE"),
])
def test_plain_cli_catches_a_faulty_server(fault: str, check: str, tmp_path: Path) -> None:
    # Speed 1: a stream opened right after the run sees the early statuses the fault replays.
    with reference_server(fresh_keys(1), rate_window=1.0, speed=1.0, faults=[fault],
                          extra_args=["--heartbeat", "0.5"]) as server:
        # The task operations only: the faults are in task answers, and a chat stream read at speed 1
        # costs seconds a scenario.
        code, out = run_cli(server, tmp_path, "--phases", "stateful", "--max-failures", "1",
                            "--exclude-path-regex", "^/(agents|chats|tools)")
    assert code == 1, out
    assert check in out, out


# -- the hooks as functions (no server) ------------------------------------------------------


def _response(body: bytes, content_type: str, url: str = "http://127.0.0.1:1/tasks/t1/stream",
              status: int = 200, cut: bool = False) -> schemathesis.Response:
    import requests

    request = requests.Request("GET", url, headers={"Accept": "application/x-ndjson"}).prepare()
    return schemathesis.Response(status, {"content-type": [content_type]}, body, request, 0.01, True,
                                 stream_cut_short=cut)


def _case(document: dict[str, Any], task_id: str = "t1") -> Any:
    schema = schemathesis.openapi.from_dict(document, config=schemathesis.Config.from_dict(
        {"base-url": "http://127.0.0.1:1"}))
    return schema["/tasks/{id}/stream"]["GET"].Case(path_parameters={"id": task_id})


def _document() -> dict[str, Any]:
    import yaml

    loaded: dict[str, Any] = yaml.safe_load(CONTRACT.read_text())
    return loaded


NAMES = {1: "received", 2: "queued", 7: "running", 10: "completed"}


def _line(status: int, fields: list[str] | None = None) -> bytes:
    task = {"id": "t1", "short_id": "t1", "status": status, "status_text": NAMES[status], "app": "a",
            "input": None, "output": {} if status == 10 else None, "error": None, "logs": [], "events": [],
            "created_at": "2026-01-02T03:04:05Z", "updated_at": "2026-01-02T03:04:05Z"}
    return json.dumps({"data": task, "fields": fields or list(task)}).encode() + b"\n"


def test_ndjson_deserializer_reads_every_line_and_refuses_junk() -> None:
    case = _case(_document())
    ctx = schemathesis.DeserializationContext(operation=case.operation, case=case)
    body = _line(1) + b'{"type":"heartbeat"}\n' + _line(10, ["status"])
    assert [line.get("type") or line["data"]["status"] for line in
            hooks.deserialize_ndjson(ctx, _response(body, hooks.NDJSON))] == [1, "heartbeat", 10]
    with pytest.raises(ValueError, match="line 2"):
        hooks.deserialize_ndjson(ctx, _response(_line(1) + b": ping\n", hooks.NDJSON))
    # A stream cut short by the reader: its last, unfinished line is not judged.
    assert len(hooks.deserialize_ndjson(ctx, _response(_line(1) + b'{"data":', hooks.NDJSON, cut=True))) == 1


def test_sse_deserializer_gives_events_without_heartbeats() -> None:
    case = _case(_document())
    ctx = schemathesis.DeserializationContext(operation=case.operation, case=case)
    body = b"id: 1\ndata: " + _line(1).strip() + b"\n\n: heartbeat\n\nid: 2\ndata: {}\n\n"
    events = hooks.deserialize_sse(ctx, _response(body, hooks.SSE))
    assert [(e["id"], json.loads(e["data"]).get("data", {}).get("status")) for e in events] == \
        [("1", 1), ("2", None)]


def test_the_ndjson_schema_is_read_as_one_line_once() -> None:
    document = _document()
    hooks.before_load_schema(None, document)  # type: ignore[arg-type]
    hooks.before_load_schema(None, document)  # type: ignore[arg-type]
    content = document["paths"]["/tasks/{id}/stream"]["get"]["responses"]["200"]["content"]
    schema = content[hooks.NDJSON]["schema"]
    assert schema["type"] == "array" and schema["items"] == {"$ref": "#/components/schemas/StreamLine"}


def test_schemathesis_validates_each_line_of_a_stream() -> None:
    case = _case(_document())
    good = _line(1) + _line(10, ["status"])
    case.operation.validate_response(_response(good, hooks.NDJSON))
    bad = _line(1) + _line(10, ["status"]).replace(b'"output": {}', b'"output": null')
    with pytest.raises(Exception, match="violates schema"):
        case.operation.validate_response(_response(bad, hooks.NDJSON))


def _stream_checks(body: bytes, cut: bool = False) -> set[str]:
    """The CT- ids harness_stream reports for one stream body of task t1."""
    try:
        hooks.harness_stream(None, _response(body, hooks.NDJSON, cut=cut), _case(_document()))  # type: ignore[arg-type]
    except FailureGroup as group:
        return {getattr(f, "check", "") for f in group.exceptions}
    except Failure as failure:
        return {getattr(failure, "check", "")}
    return set()


def test_stream_check_names_the_rule_and_spares_a_cut_stream() -> None:
    assert _stream_checks(_line(1) + _line(7, ["status"]) + _line(10, ["status"])) == set()
    regressed = _line(1) + _line(7, ["status"]) + _line(2, ["status"]) + _line(10, ["status"])
    assert _stream_checks(regressed) == {"CT-STREAM-ORDER"}
    # Cut short by the reader before the end: no terminal update is no finding; closed, it is one.
    assert _stream_checks(_line(1) + _line(7, ["status"]), cut=True) == set()
    assert _stream_checks(_line(1) + _line(7, ["status"])) == {"CT-SDK-STREAM-CLOSED-EARLY"}



def _drip_server() -> socket.socket:
    """Loopback HTTP/1.1 server for one connection: GET /stream answers chunked NDJSON, a line
    every 50 ms for at most 2 s, while the connection stays open."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(5)
            conn.recv(4096)
            try:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n")
                for _ in range(40):
                    conn.sendall(b"f\r\n{\"type\":\"beat\"}\r\n")
                    time.sleep(0.05)
            except OSError:
                return

    threading.Thread(target=serve, daemon=True).start()
    return listener


def test_a_stream_cut_short_does_not_go_back_to_the_pool() -> None:
    # Before: the cut stream's connection went back to the pool open, and the rest of its body
    # could become the next answer's status line (BadStatusLine('f\r\n')): a network error in the
    # plain CLI's stateful phase when a chat stream's heartbeat came just after the next request.
    import requests

    with _drip_server() as listener, requests.Session() as session:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/stream"
        response = session.get(url, stream=True, timeout=0.3, hooks={"response": [hooks._read_ndjson]})
        assert getattr(response, STREAM_CUT_SHORT_ATTRIBUTE, False)
        assert response.content.startswith(b'{"type":"beat"}')
        # The connection went back to its pool closed (urllib3 opens a new one for the next request).
        pooled = [conn for conn in list(response.raw._pool.pool.queue) if conn is not None]
        assert len(pooled) == 1 and pooled[0].sock is None, pooled[0].sock
