"""The reference server over real HTTP (httpx): envelope, errors, limits, isolation, routing."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from harness.net.client import ApiClient
from harness.net.reference import ReferenceServer
from tests.conftest import StartServer
from tests.server.polling import wait_until

RL_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


def data(response: httpx.Response) -> Any:
    body = response.json()
    assert body["success"] is True and body["messages"] == [], body
    return body["data"]


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["type"] == f"https://api.inference.sh/errors/{code}"
    assert body["status"] == status and body["title"] and body["detail"]
    assert body["error"] == {"code": code, "message": body["detail"]}
    return body


def wait_terminal(client: ApiClient, task_id: str, timeout: float = 20.0) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        task: dict[str, Any] = data(client.get_task(task_id))
        return task if task["status"] in (10, 11, 12, 13) else None

    return wait_until(ended, f"task {task_id} ending", timeout)


def status_of(client: ApiClient, task_id: str) -> int:
    return int(data(client.get_task(task_id))["status"])


def run(client: ApiClient, body: dict[str, Any]) -> dict[str, Any]:
    response = client.run(body)
    assert response.status_code == 200, response.text
    return data(response)


# -- envelope and happy paths ---------------------------------------------------------------


def test_run_returns_the_received_task_in_an_envelope(client: ApiClient) -> None:
    response = client.run({"app": "infsh/echo", "input": {"message": "hi"}})
    assert response.headers["content-type"] == "application/json"
    task = data(response)
    assert task["id"].startswith("task_") and task["status"] == 1
    assert task["input"] == {"message": "hi"} and task["output"] is None
    for header in RL_HEADERS:
        assert int(response.headers[header]) >= 0
    # Read-after-write: the SDK GETs the task at once.
    assert data(client.get_task(task["id"]))["id"] == task["id"]


def test_echo_walks_the_whole_happy_path(client: ApiClient) -> None:
    task = wait_terminal(client, run(client, {"app": "infsh/echo", "input": {"message": "x"}})["id"])
    assert task["status"] == 10 and task["output"] == {"message": "x"} and task["error"] is None
    statuses = [e["status"] for e in task["events"]]
    assert statuses[:3] == [1, 2, 3] and statuses[-2:] == [7, 10]
    assert len(task["logs"]) >= len(statuses)
    assert task["created_at"].endswith("Z") and task["updated_at"] >= task["created_at"]


def test_status_endpoint_is_slim(client: ApiClient) -> None:
    task = run(client, {"app": "infsh/echo", "input": {"message": "x"}})
    status = data(client.get_status(task["id"]))
    assert set(status) == {"id", "status", "updated_at"} and status["id"] == task["id"]


def test_versioned_refs_and_functions_are_accepted(client: ApiClient) -> None:
    task = run(client, {"app": "infsh/echo@abc123:run", "input": {"message": "v"}})
    assert task["app"] == "infsh/echo@abc123:run" and task["function"] == "run"
    assert wait_terminal(client, task["id"])["output"] == {"message": "v"}


def test_failing_app_ends_failed_with_its_message(client: ApiClient) -> None:
    task = wait_terminal(client, run(client, {"app": "infsh/fail", "input": {"message": "boom"}})["id"])
    assert task["status"] == 11 and task["error"] == "boom" and task["output"] is None


def test_image_passes_through_uploading_and_writes_a_png(client: ApiClient) -> None:
    task = wait_terminal(client, run(client, {"app": "infsh/image", "input": {"width": 3}})["id"])
    assert 9 in [e["status"] for e in task["events"]]
    image = task["output"]["image"]
    got = httpx.get(image["uri"])
    assert got.status_code == 200 and got.headers["content-type"] == "image/png"
    assert got.content.startswith(b"\x89PNG\r\n\x1a\n") and len(got.content) == image["size"]


def test_flow_reports_step_progress_in_logs(client: ApiClient) -> None:
    task = wait_terminal(client, run(client, {"app": "infsh/echo-image-flow",
                                              "input": {"message": "m"}})["id"])
    contents = [log["content"] for log in task["logs"]]
    assert any("step 1/2" in c for c in contents) and any("step 2/2" in c for c in contents)
    assert task["output"]["message"] == "m" and task["output"]["image"]["uri"].startswith("http")


def test_list_tasks_shows_own_tasks_newest_first(client: ApiClient, other_client: ApiClient) -> None:
    first = run(client, {"app": "infsh/echo", "input": {"message": "1"}})
    second = run(client, {"app": "infsh/echo", "input": {"message": "2"}})
    listed = [t["id"] for t in data(client.http.get("/tasks", params={"limit": 2}))]
    assert listed == [second["id"], first["id"]]
    assert second["id"] not in [t["id"] for t in data(other_client.http.get("/tasks"))]
    assert_problem(client.http.get("/tasks", params={"limit": 0}), 422, "validation_failed")


# -- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("auth", [None, "Bearer inf_wrong", "Basic abc", "Bearer"])
def test_missing_or_unknown_key_is_401_without_limit_headers(server: ReferenceServer,
                                                             auth: str | None) -> None:
    headers = {"Authorization": auth} if auth else {}
    response = httpx.get(f"{server.url}/workers", headers=headers)
    body = assert_problem(response, 401, "unauthorized")
    assert body["title"] == "Invalid API key"
    assert response.headers["www-authenticate"] == "Bearer"
    assert not any(h in response.headers for h in RL_HEADERS)


def test_unknown_app_is_404_app_not_found(client: ApiClient) -> None:
    response = client.run({"app": "infsh/nope", "input": {}})
    assert assert_problem(response, 404, "app_not_found")["title"] == "App not found"
    assert all(h in response.headers for h in RL_HEADERS)


@pytest.mark.parametrize(("body", "param"), [
    ({"app": "infsh/echo", "input": {"message": 1}}, "input.message"),
    ({"app": "infsh/echo", "input": None}, "input.message"),
    ({"app": "infsh/echo", "input": {"message": "x", "extra": 1}}, "input.extra"),
    ({"app": "infsh/sleep", "input": {"seconds": -1}}, "input.seconds"),
    ({"app": "infsh/flux", "setup": {"model": "pro"}, "input": {"prompt": "p"}}, "setup.model"),
    ({"app": "infsh/echo", "input": {"message": "x"}, "infra": "moon"}, "body.infra"),
    ({"app": "infsh/echo", "input": {"message": "x"}, "session_timeout": "10"}, "body.session_timeout"),
    ({"input": {"message": "x"}}, "body.app"),
    ({"app": "not a ref"}, "body.app"),
    ({"app": "infsh/image", "input": {"image": "http://elsewhere/x.png"}}, "input.image"),
])
def test_invalid_requests_are_422_with_invalid_params(client: ApiClient, body: dict[str, Any],
                                                      param: str) -> None:
    problem = assert_problem(client.run(body), 422, "validation_failed")
    assert problem["title"] == "Input validation failed"
    assert param in [p["name"] for p in problem["invalid_params"]]


@pytest.mark.parametrize("raw", [b"", b"{not json", b"[1,"])
def test_malformed_body_is_400(client: ApiClient, raw: bytes) -> None:
    assert_problem(client.http.post("/apps/run", content=raw), 400, "bad_request")


def test_unknown_task_route_and_method(client: ApiClient) -> None:
    assert_problem(client.get_task("task_missing"), 404, "task_not_found")
    assert_problem(client.http.get("/nowhere"), 404, "not_found")
    assert_problem(client.http.put("/apps/run"), 405, "method_not_allowed")


def test_cancel_then_cancel_again_is_409(client: ApiClient) -> None:
    task = run(client, {"app": "infsh/sleep", "input": {"seconds": 600}})
    cancelled = client.cancel(task["id"])  # empty body with Content-Type: application/json
    assert cancelled.status_code == 200 and data(cancelled)["status"] == 8
    final = wait_terminal(client, task["id"])
    assert final["status"] == 12 and [e["status"] for e in final["events"]][-2:] == [8, 12]
    assert_problem(client.cancel(task["id"]), 409, "invalid_transition")


def test_delete_only_ended_tasks_and_optionally_their_files(client: ApiClient) -> None:
    running = run(client, {"app": "infsh/sleep", "input": {"seconds": 600}})
    assert_problem(client.delete(running["id"]), 409, "invalid_transition")
    client.cancel(running["id"])
    done = wait_terminal(client, run(client, {"app": "infsh/image", "input": {}})["id"])
    uri = done["output"]["image"]["uri"]
    # A boolean query parameter is `true` or `false` (the SDKs send `files=true`), nothing else.
    assert_problem(client.http.delete(f"/tasks/{done['id']}", params={"files": "1"}), 422,
                   "validation_failed")
    response = client.delete(done["id"], files=True)
    assert response.status_code == 204 and response.content == b""
    assert_problem(client.get_task(done["id"]), 404, "task_not_found")
    assert_problem(httpx.get(uri), 404, "file_not_found")


def test_every_keyed_answer_carries_rate_limit_headers(client: ApiClient) -> None:
    answers = [client.get_task("task_missing"), client.workers(), client.http.get("/tasks"),
               client.run({"app": "infsh/echo", "input": {}}),
               client.create_file("a.txt", "text/plain", 1)]
    for response in answers:
        assert all(int(response.headers[h]) >= 0 for h in RL_HEADERS), response.request.url
        assert int(response.headers["X-RateLimit-Reset"]) >= int(time.time())


# -- isolation ------------------------------------------------------------------------------


def test_another_keys_task_is_invisible(client: ApiClient, other_client: ApiClient) -> None:
    task = run(client, {"app": "infsh/sleep", "input": {"seconds": 600}})
    tid = task["id"]
    for response in (other_client.get_task(tid), other_client.get_status(tid),
                     other_client.cancel(tid), other_client.delete(tid),
                     other_client.http.get(f"/tasks/{tid}/stream")):
        assert_problem(response, 404, "task_not_found")
    assert data(client.get_task(tid))["status"] not in (8, 12)  # the stranger's cancel did nothing
    client.cancel(tid)


def test_another_keys_file_cannot_feed_a_run(client: ApiClient, other_client: ApiClient) -> None:
    record = data(client.create_file("x.bin", "application/octet-stream", 3))[0]
    assert client.put_bytes(record["upload_url"], b"abc", "application/octet-stream").status_code == 200
    problem = assert_problem(other_client.run({"app": "infsh/image", "input": {"image": record["uri"]}}),
                             422, "validation_failed")
    assert problem["invalid_params"][0]["name"] == "input.image"


# -- files ----------------------------------------------------------------------------------


def test_upload_as_the_python_sdk_sends_it(client: ApiClient) -> None:
    spec = {"uri": "", "filename": None, "content_type": "application/octet-stream", "path": None,
            "public": None}  # no size: the JS SDK omits it for data URIs
    files = data(client.http.post("/files", json={"files": [spec]}))
    assert isinstance(files, list) and len(files) == 1
    record = files[0]
    assert record["upload_url"].startswith(client.base_url + "/upload/")
    assert_problem(httpx.get(record["uri"]), 404, "file_not_found")  # not uploaded yet
    payload = bytes(range(256)) * 4
    put = httpx.put(record["upload_url"], content=payload, headers={"Content-Type": "text/plain"})
    assert put.status_code == 200 and data(put)["uploaded"] is True
    got = httpx.get(record["uri"])
    assert got.content == payload and got.headers["content-type"] == "application/octet-stream"
    assert_problem(httpx.put(client.base_url + "/upload/not-a-token", content=b"x"), 404,
                   "file_not_found")


def test_upload_size_cap_is_413(start_server: StartServer) -> None:
    with start_server(extra_args=["--max-upload-bytes", "1000"]) as srv, \
            ApiClient(srv.url, srv.keys[0]) as api:
        record = data(api.create_file("big.bin", "application/octet-stream", 1001))[0]
        assert_problem(httpx.put(record["upload_url"], content=b"x" * 1001), 413, "payload_too_large")
        assert httpx.put(record["upload_url"], content=b"x" * 1000).status_code == 200


def test_empty_files_list_is_422(client: ApiClient) -> None:
    assert_problem(client.http.post("/files", json={"files": []}), 422, "validation_failed")


def test_a_content_type_that_cannot_be_a_header_downloads_as_octet_stream(client: ApiClient) -> None:
    # Fuzzing found it: a declared type with a non-Latin-1 character made the download a 500.
    for declared in ("image/\U000a7cb2", "text/plain\nX-Injected: 1"):
        record = client.create_file("x.bin", declared, 3).json()["data"][0]
        assert client.put_bytes(record["upload_url"], b"abc", "application/octet-stream").status_code < 300
        got = client.download(record["uri"])
        assert got.status_code == 200 and got.content == b"abc"
        assert got.headers["content-type"] == "application/octet-stream"


@pytest.mark.parametrize("field", ["session", "session_timeout", "webhook", "run_at"])
def test_unserved_run_fields_are_refused_not_ignored(client: ApiClient, field: str) -> None:
    # Sessions, webhooks and scheduled runs are not served: a value is a 422 naming the field,
    # never accepted and silently ignored; null (or leaving it out) asks for nothing.
    value: object = 60 if field == "session_timeout" else "new" if field == "session" else (
        "http://127.0.0.1:9/hook" if field == "webhook" else "2030-01-01T00:00:00Z")
    refused = client.run({"app": "infsh/echo", "input": {"message": "x"}, field: value})
    body = assert_problem(refused, 422, "validation_failed")
    assert body["invalid_params"][0]["name"] == f"body.{field}"
    assert "not served" in body["invalid_params"][0]["reason"]
    accepted = client.run({"app": "infsh/echo", "input": {"message": "x"}, field: None})
    assert accepted.status_code == 200, accepted.text


# -- workers, warmth and routing ------------------------------------------------------------


def statuses_of(task: dict[str, Any]) -> list[int]:
    return [e["status"] for e in task["events"]]


def test_setup_warmth_skips_setup_phases(start_server: StartServer) -> None:
    with start_server(extra_args=["--cloud-workers", "1", "--private-workers", "0"]) as srv, \
            ApiClient(srv.url, srv.keys[0]) as api:
        def flux(model: str) -> list[int]:
            body = {"app": "infsh/flux", "setup": {"model": model}, "input": {"prompt": "p"}}
            return statuses_of(wait_terminal(api, run(api, body)["id"]))

        cold, warm, other_setup = flux("schnell"), flux("schnell"), flux("dev")
        assert {4, 5, 6} <= set(cold)
        assert not {4, 5, 6} & set(warm) and warm[:4] == [1, 2, 3, 7]
        assert 6 in other_setup and not {4, 5} & set(other_setup)
        worker = data(api.workers())[0]
        assert worker["warm"]["app"] == "infsh/flux"
        assert set(worker["warm"]["setup"]) == {"fingerprint"}  # never the setup's values


def test_queueing_when_every_worker_is_busy(start_server: StartServer) -> None:
    with start_server(extra_args=["--cloud-workers", "1"]) as srv, ApiClient(srv.url, srv.keys[0]) as api:
        first = run(api, {"app": "infsh/sleep", "input": {"seconds": 600}})
        second = run(api, {"app": "infsh/echo", "input": {"message": "q"}})
        wait_until(lambda: status_of(api, first["id"]) == 7, "the first task running on the only worker")
        wait_until(lambda: status_of(api, second["id"]) == 2, "the second task queued")
        api.cancel(first["id"])
        cancelled = wait_terminal(api, first["id"])
        done = wait_terminal(api, second["id"])
    assert done["status"] == 10
    # The second task left the queue only once the first let go of the worker.
    statuses = statuses_of(done)
    left_queue = done["events"][statuses.index(2) + 1]["created_at"]
    cancel_asked = cancelled["events"][statuses_of(cancelled).index(8)]["created_at"]
    assert left_queue >= cancel_asked, (left_queue, cancel_asked)


def test_private_routing(client: ApiClient, other_client: ApiClient) -> None:
    workers = data(client.workers())
    own = [w["id"] for w in workers if w["pool"] == "private"]
    theirs = [w["id"] for w in data(other_client.workers()) if w["pool"] == "private"]
    assert len(own) == 2 and not set(own) & set(theirs)
    echo = {"app": "infsh/echo", "input": {"message": "p"}}
    private = wait_terminal(client, run(client, {**echo, "infra": "private"})["id"])
    assert private["worker_id"] in own
    pinned = wait_terminal(client, run(client, {**echo, "infra": "private", "workers": [own[1]]})["id"])
    assert pinned["worker_id"] == own[1]
    first = wait_terminal(client, run(client, {**echo, "infra": "private_first"})["id"])
    assert first["worker_id"] in own
    cloud = wait_terminal(client, run(client, {**echo, "infra": "cloud"})["id"])
    assert cloud["worker_id"].startswith("cw-")
    for bad in ({**echo, "infra": "private", "workers": [theirs[0]]},
                {**echo, "infra": "cloud", "workers": [own[0]]},
                {**echo, "workers": []}):
        assert_problem(client.run(bad), 422, "validation_failed")


def test_private_infra_without_private_workers_is_422(start_server: StartServer) -> None:
    with start_server(extra_args=["--private-workers", "0"]) as srv, ApiClient(srv.url, srv.keys[0]) as api:
        problem = assert_problem(api.run({"app": "infsh/echo", "input": {"message": "x"},
                                          "infra": "private"}), 422, "validation_failed")
        assert "private workers" in problem["detail"]


# -- retention ------------------------------------------------------------------------------


def test_finished_tasks_expire_by_count(start_server: StartServer) -> None:
    with start_server(extra_args=["--max-finished-tasks", "2"]) as srv, \
            ApiClient(srv.url, srv.keys[0]) as api:
        ids = [run(api, {"app": "infsh/echo", "input": {"message": str(i)}})["id"] for i in range(3)]
        for tid in ids:
            wait_terminal(api, tid)
        # The sweeper runs every second.
        wait_until(lambda: api.get_task(ids[0]).status_code == 404, "the oldest finished task evicted")
        assert api.get_task(ids[2]).status_code == 200


def test_finished_tasks_and_files_expire_by_age(start_server: StartServer) -> None:
    with start_server(extra_args=["--retention", "0.5"]) as srv, ApiClient(srv.url, srv.keys[0]) as api:
        task = wait_terminal(api, run(api, {"app": "infsh/image", "input": {}})["id"])
        wait_until(lambda: api.get_task(task["id"]).status_code == 404, "the finished task expired")
        wait_until(lambda: httpx.get(task["output"]["image"]["uri"]).status_code == 404,
                   "its output file expired")


# -- rate limits at the edge of a window -----------------------------------------------------


def wait_for_window_start(window: float) -> None:
    """Sleep until just after a window boundary, so a burst falls inside one window."""
    time.sleep(window - (time.time() % window) + 0.02)


def test_limit_counts_down_refuses_and_resets(start_server: StartServer) -> None:
    window = 3.0
    with start_server(rate_window=window) as srv, ApiClient(srv.url, srv.keys[0]) as api:
        wait_for_window_start(window)
        answers: list[httpx.Response] = []
        while len(answers) < 200 and (not answers or answers[-1].status_code != 429):
            answers.append(api.create_file("f", "text/plain", 1))
        refused = answers[-1]
        # Judge the window the 429 fell in, as delimited by the server's own Reset (a slow
        # machine may carry the burst over a boundary).
        same = [r for r in answers[:-1]
                if r.headers["X-RateLimit-Reset"] == refused.headers["X-RateLimit-Reset"]]
        admitted = same
        assert [int(r.headers["X-RateLimit-Remaining"]) for r in admitted] == list(range(49, -1, -1))
        assert {r.headers["X-RateLimit-Limit"] for r in answers} == {"50"}
        reset = int(refused.headers["X-RateLimit-Reset"])
        assert_problem(refused, 429, "rate_limited")
        assert refused.headers["X-RateLimit-Remaining"] == "0"
        assert 1 <= int(refused.headers["Retry-After"]) <= window
        assert time.time() < reset <= time.time() + window + 1
        # Other groups and other keys are untouched.
        assert api.workers().status_code == 200
        with ApiClient(srv.url, srv.keys[1]) as other:
            assert other.create_file("f", "text/plain", 1).status_code == 200
        def admitted_again() -> httpx.Response | None:
            response = api.create_file("f", "text/plain", 1)
            return response if response.status_code == 200 else None

        # Refused requests are not counted, so polling through the rest of the window is free.
        after = wait_until(admitted_again, "a request admitted in the next window", window + 2, interval=0.1)
        assert after.headers["X-RateLimit-Remaining"] == "49"


def test_a_429_run_creates_no_task(start_server: StartServer) -> None:
    window = 3.0
    with start_server(rate_window=window) as srv, ApiClient(srv.url, srv.keys[0]) as api:
        wait_for_window_start(window)
        codes: list[int] = []
        while len(codes) < 400 and 429 not in codes:
            codes.append(api.run({"app": "infsh/echo", "input": {"message": "r"}}).status_code)
        assert codes[-1] == 429 and codes.count(200) >= 100
        # Every 200 is a task, and the 429 is not.
        assert len(data(api.http.get("/tasks", params={"limit": 1000}))) == codes.count(200)
