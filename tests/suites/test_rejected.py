"""Rejected (13) for real: `harness serve --max-queued N` refuses runs at admission, and the
lifecycle, stream and SDK-hazard rules are proven on the tasks it rejects."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from inferencesh import Inference

from harness.checks.streams import StreamLineSchema, capture_of, judge_stream
from harness.contract import contracts_dir, load_lifecycle, load_limits
from harness.history import read_history
from harness.net.client import ApiClient, response_data
from harness.net.reference import ReferenceServer, fresh_keys, reference_server
from harness.suites.lifecycle.run import LifecycleOptions, run_lifecycle
from tests.conftest import TEST_SPEED, TEST_WINDOW

LIMITS = load_limits().model_copy(update={"window_seconds": TEST_WINDOW})
REJECTED = 13
ECHO = {"app": "infsh/echo", "input": {"message": "hi"}}


@pytest.fixture(scope="module")
def full() -> Iterator[ReferenceServer]:
    """A server whose queue is always full: every run is rejected."""
    with reference_server(fresh_keys(2), rate_window=TEST_WINDOW, speed=TEST_SPEED,
                          extra_args=["--max-queued", "0", "--heartbeat", "0.2"]) as running:
        yield running


def test_a_full_queue_rejects_at_admission(full: ReferenceServer) -> None:
    with ApiClient(full.url, full.keys[0]) as client:
        task = response_data(client.run(ECHO))
        assert task["status"] == REJECTED and "queue is full" in task["error"]
        assert response_data(client.get_task(task["id"]))["status"] == REJECTED
        assert client.cancel(task["id"]).status_code == 409  # it has ended
        # Its stream: the snapshot is the terminal update, then the close; every stream rule holds.
        openapi = yaml.safe_load((contracts_dir() / "openapi.yaml").read_text())
        for fmt in ("ndjson", "sse"):
            reading = client.read_stream(task["id"], fmt, 5.0)
            assert reading.closed_by_server and len(reading.updates) == 1
            cap = capture_of(reading.raw_tail, requested=fmt, task_id=task["id"], label=fmt,
                             status=reading.status_code, content_type=reading.content_type, cut=False)
            assert judge_stream(cap, load_lifecycle(), StreamLineSchema(openapi), 0.3) == []


def test_the_python_sdk_raises_on_a_rejected_run(full: ReferenceServer) -> None:
    # WIRE.md §4: Python reads 13 as terminal and raises; JS would wait forever.
    sdk = Inference(api_key=full.keys[0], base_url=full.url)
    with pytest.raises(RuntimeError, match="task rejected: rejected: the queue is full"):
        sdk.run(ECHO)
    with pytest.raises(RuntimeError, match="task rejected"):
        list(sdk.run(ECHO, stream=True))


# A rejected task is an SDK hazard on any server (the JS SDK has no 13): a warning, never an error.
HAZARD = "LC-SDK-UNKNOWN-TERMINAL"


@pytest.mark.parametrize(("fault", "wanted"), [(None, {HAZARD}),
                                               ("failed-without-error", {HAZARD, "LC-FAILED-ERROR"})])
def test_the_lifecycle_checks_hold_on_rejected_tasks(tmp_path: Path, fault: str | None,
                                                     wanted: set[str]) -> None:
    # One cloud worker and a queue of one: under the suite's concurrency most runs are rejected.
    keys = fresh_keys(2)
    with reference_server(keys, rate_window=TEST_WINDOW, speed=TEST_SPEED, faults=[fault] if fault else [],
                          extra_args=["--max-queued", "1", "--cloud-workers", "1", "--heartbeat", "0.2"]
                          ) as srv:
        history = tmp_path / "obs.jsonl"
        result = run_lifecycle(srv.url, srv.keys, load_lifecycle(), LIMITS, history,
                               LifecycleOptions(seed=5, tasks=12, deadline_s=10))
    rejected = {o.task for o in read_history(history) if o.status == REJECTED}
    assert len(rejected) >= 3
    assert {f.check for f in result.findings} == wanted, [f.message for f in result.findings]
    hazards = [f for f in result.findings if f.check == HAZARD]
    assert {f.task_id for f in hazards} == rejected and {f.severity for f in hazards} == {"warning"}
    assert "@inferencesh/sdk" in hazards[0].message
    if fault:
        assert any(f.task_id in rejected for f in result.findings if f.check == "LC-FAILED-ERROR")
