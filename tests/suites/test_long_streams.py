"""Long streams: a task running longer than 30 s (at --speed 20: 2 s), its stream judged on the
contract's promise (a non-heartbeat update at least every 20 s) and on the Python SDK's idle
check (a heartbeat 30 s after the last update drops the stream). Every bound is divided by the
speed, as the server divides every duration."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.checks.lifecycle import InvariantOptions, check_history
from harness.contract import load_lifecycle
from harness.history import HistoryWriter, read_history
from harness.net.client import ApiClient
from harness.net.recording import RecordingClient
from harness.net.reference import fresh_keys, reference_server

SPEED = 20.0
LONG = {"app": "infsh/sleep", "input": {"seconds": 40}}  # 40 s of Running: 2 s at speed 20
BOUNDS = InvariantOptions(heartbeat_bound_s=15 / SPEED, progress_bound_s=20 / SPEED, sdk_idle_s=30 / SPEED)


@pytest.mark.parametrize(("fault", "wanted"), [
    (None, set()),
    ("heartbeats-only", {"LC-PROGRESS-GAP", "LC-SDK-STREAM-IDLE"}),
])
def test_a_long_stream_keeps_its_promise(tmp_path: Path, fault: str | None, wanted: set[str]) -> None:
    keys = fresh_keys(1)
    history = tmp_path / "obs.jsonl"
    with reference_server(keys, speed=SPEED, faults=[fault] if fault else [],
                          extra_args=["--heartbeat", str(10 / SPEED),
                                      "--progress-interval", str(20 / SPEED)]) as srv, \
            ApiClient(srv.url, keys[0]) as client, HistoryWriter(history) as writer:
        observer = RecordingClient(client, writer, "o1", "key1")
        _, task = observer.run(LONG, 10.0)
        reading = observer.stream(task["id"], "ndjson", 10.0)
    assert reading.closed_by_server
    observations = list(read_history(history))
    events = [o for o in observations if o.conn is not None]
    assert (events[-1].recv_ns or 0) - (events[0].recv_ns or 0) > 30 / SPEED * 1e9  # longer than 30 s
    report = check_history(observations, load_lifecycle(), BOUNDS)
    assert {f.check for f in report.findings} == wanted, [f.message for f in report.findings]
