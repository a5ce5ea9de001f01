"""The official Python SDK (`inferencesh==0.36.0`), unchanged, against the reference server.

Every test drives the real SDK over HTTP against the session's uvicorn server (see conftest.py)
and checks outcomes: statuses, outputs, raised error types and downloaded bytes.
The async client needs the SDK's `async` extra (aiohttp, aiofiles).
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from inferencesh import AsyncInference, Inference
from inferencesh.models.errors import APIError

from harness.net.reference import ReferenceServer
from tests.server.polling import wait_until

RECEIVED, RUNNING, CANCELLING, COMPLETED, FAILED, CANCELLED = 1, 7, 8, 10, 11, 12
TERMINAL = frozenset({10, 11, 12, 13})
# The SDK's happy path (inferencesh.types.TaskStatus): received .. running, uploading, completed.
HAPPY_PATH = (1, 2, 3, 4, 5, 6, 7, 9, 10)
# What the Python SDK keeps of a task (`_strip_task`).
STRIPPED_KEYS = {"id", "created_at", "updated_at", "input", "output", "logs", "status"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def sdk(server: ReferenceServer) -> Inference:
    return Inference(api_key=server.keys[0], base_url=server.url)


@pytest.fixture
def other_sdk(server: ReferenceServer) -> Inference:
    return Inference(api_key=server.keys[1], base_url=server.url)


def wait_terminal(client: Inference, task_id: str, timeout: float = 15.0) -> dict[str, Any]:
    """Poll the SDK's `get_task` until the task ends; return the full task."""
    def ended() -> dict[str, Any] | None:
        task: dict[str, Any] = client.get_task(task_id).data
        return task if task["status"] in TERMINAL else None

    return wait_until(ended, f"task {task_id} ending", timeout)


def wait_status(client: Inference, task_id: str, status: int, timeout: float = 10.0) -> None:
    wait_until(lambda: client.tasks.get(task_id).data["status"] >= status,
               f"task {task_id} reaching status {status}", timeout)


def download(uri: str) -> bytes:
    """A plain GET, no Authorization header (as the docs tell users to fetch outputs)."""
    response = httpx.get(uri, timeout=10.0)
    assert response.status_code == 200, (uri, response.status_code, response.text[:200])
    return response.content


def lifecycle_positions(statuses: list[int]) -> list[int]:
    assert all(s in HAPPY_PATH for s in statuses), statuses
    return [HAPPY_PATH.index(s) for s in statuses]


# -- 1. run and wait ---------------------------------------------------------------------------


def test_run_waits_for_completion(sdk: Inference) -> None:
    result = sdk.run({"app": "infsh/echo", "input": {"message": "hello"}})
    assert isinstance(result, dict)
    assert result["status"] == COMPLETED
    assert result["output"] == {"message": "hello"}
    assert result["input"] == {"message": "hello"}
    assert isinstance(result["id"], str) and result["id"]
    assert set(result) == STRIPPED_KEYS
    # The GET view agrees with what run() returned.
    task = sdk.get_task(result["id"]).data
    assert task["status"] == COMPLETED
    assert task["output"] == {"message": "hello"}


def test_namespaced_tasks_run(sdk: Inference) -> None:
    result = sdk.tasks.run({"app": "infsh/echo", "input": {"message": "via tasks.run"}})
    assert result["status"] == COMPLETED
    assert result["output"] == {"message": "via tasks.run"}


# -- 2. run without waiting, then poll ---------------------------------------------------------


def test_run_without_wait_then_poll(sdk: Inference) -> None:
    created = sdk.run({"app": "infsh/echo", "input": {"message": "later"}}, wait=False)
    assert isinstance(created, dict)
    assert set(created) == STRIPPED_KEYS
    assert isinstance(created["id"], str) and created["id"]
    assert created["status"] not in TERMINAL  # answered before the task ended: no waiting
    assert created["output"] is None
    assert created["input"] == {"message": "later"}

    seen: list[int] = []

    def ended() -> dict[str, Any] | None:
        task: dict[str, Any] = sdk.tasks.get(created["id"]).data
        assert task["id"] == created["id"]
        seen.append(task["status"])
        return task if task["status"] in TERMINAL else None

    task = wait_until(ended, f"task {created['id']} ending", 15.0, interval=0.01)
    assert task["status"] == COMPLETED
    assert task["output"] == {"message": "later"}
    assert lifecycle_positions(seen) == sorted(lifecycle_positions(seen))


# -- 3. run(stream=True) -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "output"),
    [
        ({"app": "infsh/echo", "input": {"message": "streamed"}}, {"message": "streamed"}),
        # Four simulated seconds (0.2 s at speed 20): long enough to watch it run.
        ({"app": "infsh/sleep", "input": {"seconds": 4}}, {"slept": 4}),
    ],
    ids=["echo", "sleep"],
)
def test_run_stream_updates(sdk: Inference, params: dict[str, Any], output: dict[str, Any]) -> None:
    stream = sdk.run(params, stream=True)
    updates = list(stream)  # type: ignore[arg-type]
    assert updates, "the stream yielded nothing"
    statuses = [u["status"] for u in updates]
    positions = lifecycle_positions(statuses)
    assert positions == sorted(positions), statuses
    assert statuses.count(COMPLETED) == 1
    last = updates[-1]
    assert last["status"] == COMPLETED
    assert last["output"] == output
    assert stream.result == last  # type: ignore[union-attr]
    assert all(u["id"] == last["id"] for u in updates)
    if params["app"] == "infsh/sleep":
        assert RUNNING in statuses, statuses
        assert len(updates) >= 3, statuses


# -- 4. files ----------------------------------------------------------------------------------


@pytest.fixture
def blob(tmp_path: Path) -> tuple[Path, bytes]:
    data = os.urandom(3000) + b"\x00\xff\r\n" + os.urandom(97)
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    return path, data


def test_upload_file_and_pass_it_through(sdk: Inference, blob: tuple[Path, bytes]) -> None:
    path, data = blob
    file = sdk.upload_file(str(path))
    assert isinstance(file, dict)
    assert isinstance(file["uri"], str) and file["uri"].startswith("http")
    assert file["filename"] == "blob.bin"
    assert download(file["uri"]) == data

    result = sdk.run({"app": "infsh/image", "input": {"image": file["uri"]}})
    assert result["status"] == COMPLETED
    assert result["input"] == {"image": file["uri"]}
    out_uri = result["output"]["image"]["uri"]
    assert out_uri != file["uri"]
    assert download(out_uri) == data


def test_run_uploads_local_path_automatically(sdk: Inference, blob: tuple[Path, bytes]) -> None:
    path, data = blob
    result = sdk.run({"app": "infsh/image", "input": {"image": str(path)}})
    assert result["status"] == COMPLETED
    # The SDK replaced the path by the URI of the file it uploaded.
    sent = result["input"]["image"]
    assert sent != str(path) and sent.startswith("http")
    assert download(sent) == data
    assert download(result["output"]["image"]["uri"]) == data


# -- 5. cancel ---------------------------------------------------------------------------------


def test_cancel_without_wait(sdk: Inference) -> None:
    created = sdk.run({"app": "infsh/sleep", "input": {"seconds": 600}}, wait=False)
    task_id = created["id"]
    wait_status(sdk, task_id, RUNNING)
    assert sdk.cancel(task_id) is None
    task = wait_terminal(sdk, task_id, timeout=10.0)
    assert task["status"] == CANCELLED
    assert task["output"] is None
    # Cancelling an ended task is a 409 the SDK surfaces as APIError.
    with pytest.raises(APIError) as excinfo:
        sdk.tasks.cancel(task_id)
    assert excinfo.value.status_code == 409
    assert excinfo.value.code == "invalid_transition"


def test_cancel_while_run_waits_in_a_thread(sdk: Inference, monkeypatch: pytest.MonkeyPatch) -> None:
    created: queue.Queue[str] = queue.Queue()
    streaming = threading.Event()
    original: Callable[..., Any] = sdk._request

    def spy(method: str, endpoint: str, **kwargs: Any) -> Any:
        response = original(method, endpoint, **kwargs)
        if method == "post" and endpoint == "/apps/run":
            created.put(response.data["id"])
        elif endpoint.endswith("/stream"):
            streaming.set()
        return response

    # Observe the SDK's own requests (to learn the id run() created); nothing is changed.
    monkeypatch.setattr(sdk, "_request", spy)
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(sdk.run, {"app": "infsh/sleep", "input": {"seconds": 600}})
        task_id = created.get(timeout=10.0)
        assert streaming.wait(10.0), "run() never opened the task stream"
        wait_status(sdk, task_id, RUNNING)
        sdk.cancel(task_id)
        with pytest.raises(RuntimeError, match="cancelled"):
            future.result(timeout=15.0)
    assert sdk.get_task(task_id).data["status"] == CANCELLED


# -- 6. a failing app --------------------------------------------------------------------------


def test_failed_task_raises_runtime_error(sdk: Inference) -> None:
    with pytest.raises(RuntimeError, match="boom 42") as excinfo:
        sdk.run({"app": "infsh/fail", "input": {"message": "boom 42"}})
    assert not isinstance(excinfo.value, APIError)


# -- 7. HTTP errors ----------------------------------------------------------------------------


def test_bad_key_is_api_error_401(server: ReferenceServer) -> None:
    bad = Inference(api_key="inf_wrong", base_url=server.url)
    with pytest.raises(APIError) as excinfo:
        bad.run({"app": "infsh/echo", "input": {"message": "hello"}})
    assert excinfo.value.status_code == 401
    assert excinfo.value.code == "unauthorized"
    assert str(excinfo.value).startswith("HTTP 401: ")


def test_unknown_app_is_api_error_404(sdk: Inference) -> None:
    with pytest.raises(APIError) as excinfo:
        sdk.run({"app": "infsh/no-such-app", "input": {"message": "hello"}})
    assert excinfo.value.status_code == 404
    assert excinfo.value.code == "app_not_found"


def test_unknown_or_foreign_task_is_api_error_404(sdk: Inference, other_sdk: Inference) -> None:
    with pytest.raises(APIError) as excinfo:
        sdk.get_task("task_000000000000000000000000")
    assert excinfo.value.status_code == 404
    assert excinfo.value.code == "task_not_found"
    mine = sdk.run({"app": "infsh/echo", "input": {"message": "mine"}}, wait=False)
    with pytest.raises(APIError) as excinfo:
        other_sdk.get_task(mine["id"])
    assert excinfo.value.status_code == 404


@pytest.mark.parametrize(
    "params",
    [
        {"app": "infsh/echo", "input": {"message": 5}},
        {"app": "infsh/echo", "input": {}},
        {"app": "infsh/echo", "input": {"message": "hi", "extra": "no"}},
        {"app": "infsh/flux", "input": {"prompt": "x"}, "setup": {"model": "xl"}},
    ],
    ids=["wrong-type", "missing", "unknown-field", "bad-setup"],
)
def test_invalid_input_is_api_error_422(sdk: Inference, params: dict[str, Any]) -> None:
    with pytest.raises(APIError) as excinfo:
        sdk.run(params)
    assert excinfo.value.status_code == 422
    assert excinfo.value.code == "validation_failed"
    section = "setup" if "setup" in params else "input"
    assert excinfo.value.message.startswith(section + "."), excinfo.value.message


# -- 8. the async client -----------------------------------------------------------------------


def test_async_client_run(server: ReferenceServer) -> None:
    async def main() -> tuple[dict[str, Any], dict[str, Any], list[int]]:
        client = AsyncInference(api_key=server.keys[0], base_url=server.url)
        result = await client.run({"app": "infsh/echo", "input": {"message": "async hello"}})
        task = (await client.get_task(result["id"])).data
        stream = await client.run({"app": "infsh/echo", "input": {"message": "async stream"}},
                                  stream=True)
        statuses = [update["status"] async for update in stream]  # type: ignore[union-attr]
        return result, task, statuses

    result, task, statuses = asyncio.run(main())
    assert result["status"] == COMPLETED
    assert result["output"] == {"message": "async hello"}
    assert task["status"] == COMPLETED and task["output"] == {"message": "async hello"}
    assert statuses[-1] == COMPLETED
    assert lifecycle_positions(statuses) == sorted(lifecycle_positions(statuses))


def test_async_client_failure_and_bad_key(server: ReferenceServer) -> None:
    async def main() -> tuple[BaseException | None, BaseException | None]:
        client = AsyncInference(api_key=server.keys[0], base_url=server.url)
        bad = AsyncInference(api_key="inf_wrong", base_url=server.url)
        failures = await asyncio.gather(
            client.run({"app": "infsh/fail", "input": {"message": "async boom"}}),
            bad.run({"app": "infsh/echo", "input": {"message": "x"}}),
            return_exceptions=True,
        )
        return failures[0], failures[1]

    failed, unauthorized = asyncio.run(main())
    assert isinstance(failed, RuntimeError) and "async boom" in str(failed)
    assert isinstance(unauthorized, APIError) and unauthorized.status_code == 401


# -- 9. setup and flows ------------------------------------------------------------------------


def test_flux_with_setup(sdk: Inference) -> None:
    result = sdk.run({"app": "infsh/flux", "input": {"prompt": "a red fox"},
                      "setup": {"model": "schnell"}})
    assert result["status"] == COMPLETED
    output = result["output"]
    assert output["model"] == "schnell"
    assert output["prompt"] == "a red fox"
    assert output["image"]["content_type"] == "image/png"
    image = download(output["image"]["uri"])
    assert image.startswith(PNG_SIGNATURE)
    assert len(image) == output["image"]["size"]


def test_flow_runs_through_apps_run(sdk: Inference) -> None:
    result = sdk.run({"app": "infsh/echo-image-flow", "input": {"message": "flow hello"}})
    assert result["status"] == COMPLETED
    assert result["output"]["message"] == "flow hello"
    image = download(result["output"]["image"]["uri"])
    assert image.startswith(PNG_SIGNATURE)
    logs = [log["content"] for log in result["logs"]]
    assert any("step 2/2" in line for line in logs), logs
