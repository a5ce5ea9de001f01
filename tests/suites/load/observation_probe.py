"""Run by test_observation_lines.py in its own process (gevent patches the whole process).

Drives ApiUser's request and stream paths over a scripted fake transport (no sockets) and
prints one JSON object: for each case, the history lines the user wrote.
"""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

from probe_environment import probe_environment  # noqa: E402

from harness.suites.load.routes import (  # noqa: E402
    CREATE_FILE,
    DOWNLOAD,
    GET_TASK,
    LIST,
    STATUS,
    UPLOAD,
    Request,
    json_payload,
)
from harness.suites.load.users import ApiUser, LimitUser, StreamResult  # noqa: E402

HOST = "http://127.0.0.1:9/api"
EVENTS = [{"status": 1, "created_at": "2024-01-01T00:00:00Z"},
          {"status": 3, "created_at": "2024-01-01T00:00:01Z"},
          {"status": 10, "created_at": "2024-01-01T00:00:02Z"}]
TASK = {"id": "t1", "status": 10, "output": {"x": 1}, "error": None,
        "updated_at": "2024-01-01T00:00:02Z", "events": EVENTS}
RUNNING = {"id": "t1", "status": 3, "updated_at": "2024-01-01T00:00:01Z"}
PROBLEM = {"type": "https://example.test/errors/rate_limited", "title": "Too Many Requests",
           "status": 429, "detail": "slow down", "error": {"code": "rate_limited", "message": "m"}}
LEGACY = {"error": {"code": "rate_limited", "message": "m"}}  # the old check's minimum
LIMIT_HEADERS = {"X-RateLimit-Limit": "10", "X-RateLimit-Reset": "1700000000"}


def envelope(data: Any) -> bytes:
    return json.dumps({"success": True, "data": data, "messages": []}).encode()


class Headers(dict[str, str]):
    """Case-insensitive lookups, as the user agent's header object."""

    def __init__(self, items: dict[str, str]) -> None:
        super().__init__({k.lower(): v for k, v in items.items()})

    def get(self, name: str, default: Any = None) -> Any:
        return super().get(name.lower(), default)


class Answer:
    """A scripted answer, read as the user agent's raw response is: a body in one piece, a
    stream's lines one per receive (then `rest`, then the end)."""

    _sent_request = b""
    block_size = 65536

    def __init__(self, code: int, headers: dict[str, str] | None = None, body: bytes = b"",
                 lines: list[bytes] | None = None, rest: bytes = b"") -> None:
        self.status_code = code
        self.headers = Headers(headers or {})
        self._chunks = [body] if body else [*(lines or []), *([rest] if rest else [])]
        self._body_buffer = bytearray()
        self.message_complete = False
        self._response = self
        self._sock = self

    def recv(self, size: int) -> bytes:
        return self._chunks.pop(0) if self._chunks else b""

    def feed(self, data: bytes) -> None:
        self._body_buffer += data
        self.message_complete = not data

    def read(self, length: int | None = None) -> bytes:
        return self._chunks.pop(0) if self._chunks else b""

    def release(self) -> None:
        pass


class Agent:
    """Stands in for FastHttpSession's user agent and its client pool."""

    def __init__(self) -> None:
        self.script: list[Answer | Exception] = []
        self.clientpool = self

    def get_client(self, origin: Any) -> "Agent":
        return self

    def response_type(self, raw: Answer, sent_request: Any = None) -> Answer:
        return raw

    def _next(self) -> Answer:
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    def request(self, method: str, path: str, body: Any = None, headers: Any = None) -> Answer:
        return self._next()

    def urlopen(self, url: str, method: str = "GET", headers: Any = None, payload: Any = None) -> Answer:
        return self._next()


def main() -> int:
    os.environ["HARNESS_API_KEYS"] = "inf_probe_key,inf_probe_key2"

    class Probe(ApiUser):
        def scenario(self) -> None:
            pass

    class Limit(LimitUser):
        pass

    class Over(LimitUser):
        expect_429 = True

    for cls in (Probe, Limit, Over):
        cls.host = HOST
    env, session = probe_environment(Probe, HOST)
    agent = Agent()

    def user(cls: type[ApiUser]) -> ApiUser:
        made = cls(env)
        made.on_start()
        made._agent = agent
        return made

    plain, limit, over = user(Probe), user(Limit), user(Over)
    deadline = time.monotonic_ns() + 5_000_000_000
    ok = {"Content-Type": "application/json"}
    problem_type = {"Content-Type": "application/problem+json"}
    cases: list[tuple[str, list[Answer | Exception], Any]] = [
        ("get_task", [Answer(200, {**ok, "X-RateLimit-Remaining": "7"}, envelope(TASK))],
         lambda: plain.get_task("t1")),
        ("get_task_memo", [Answer(200, {**ok, "X-RateLimit-Remaining": "6"}, envelope(TASK))],
         lambda: plain.get_task("t1")),
        ("get_task_spaced_remaining", [Answer(200, {"X-RateLimit-Remaining": " 5 "}, envelope(TASK))],
         lambda: plain.get_task("t1")),
        ("get_task_text_remaining", [Answer(200, {"X-RateLimit-Remaining": "many"}, envelope(TASK))],
         lambda: plain.get_task("t1")),
        ("get_task_superscript_remaining", [Answer(200, {"X-RateLimit-Remaining": "\u00b2"}, envelope(TASK))],
         lambda: plain.get_task("t1")),
        ("get_task_no_headers", [Answer(200, {}, envelope(RUNNING))], lambda: plain.get_task("t1")),
        ("status", [Answer(200, {"X-RateLimit-Remaining": "0"}, envelope({"status": 3}))],
         lambda: plain.get_status("t1")),
        ("status_null", [Answer(200, {}, envelope({"status": None}))], lambda: plain.get_status("t1")),
        ("run", [Answer(201, {**ok, "X-RateLimit-Remaining": "99", **LIMIT_HEADERS},
                        envelope({"id": "t2", "status": 1}))],
         lambda: plain.start_task({"app": "infsh/echo", "input": {}})),
        ("run_429", [Answer(429, {**problem_type, "X-RateLimit-Remaining": "0", "Retry-After": "1",
                                  **LIMIT_HEADERS}, json.dumps(PROBLEM).encode())],
         lambda: plain.start_task({"app": "infsh/echo", "input": {}})),
        ("run_429_text", [Answer(429, {"Content-Type": "text/plain", "X-RateLimit-Remaining": "0",
                                       "Retry-After": "soon"}, b"slow down")],
         lambda: plain.start_task({"app": "infsh/echo", "input": {}})),
        ("run_429_no_remaining", [Answer(429, {**problem_type}, json.dumps(PROBLEM).encode())],
         lambda: plain.start_task({"app": "infsh/echo", "input": {}})),
        ("run_500", [Answer(500, {"X-RateLimit-Remaining": "3"}, b"boom")],
         lambda: plain.start_task({"app": "infsh/echo", "input": {}})),
        ("run_no_answer", [ConnectionResetError("reset")],
         lambda: plain.start_task({"app": "infsh/echo", "input": {}})),
        ("get_no_answer", [TimeoutError("slow")], lambda: plain.get_task("t1")),
        ("cancel_409", [Answer(409, {"X-RateLimit-Remaining": "4"}, b'{"detail":"done"}')],
         lambda: plain.give_up("t1")),
        ("list", [Answer(200, {"X-RateLimit-Remaining": "8"}, envelope([{"id": "t1"}]))],
         lambda: plain.call(Request(LIST, "/tasks?limit=5"))),
        ("files", [Answer(200, {"X-RateLimit-Remaining": "2"}, envelope([{"uri": "u"}]))],
         lambda: plain.call(Request(CREATE_FILE, "/files", json_payload({"files": []})))),
        ("upload_put", [Answer(200, {}, b"")],
         lambda: plain.call(Request(UPLOAD, "http://127.0.0.1:9/upload/tok", b"abc",
                                    headers={"Content-Type": "application/octet-stream"}))),
        ("download", [Answer(200, {}, b"abc")],
         lambda: plain.call(Request(DOWNLOAD, "http://127.0.0.1:9/files/f/x", task_id="t1",
                                    headers={"User-Agent": "ua"}))),
        ("limit_get", [Answer(200, {**ok, "X-RateLimit-Remaining": "9", **LIMIT_HEADERS},
                              envelope(TASK))],
         lambda: limit.call(Request(GET_TASK, "/tasks/t1", key=1, task_id="t1"))),
        ("limit_missing", [Answer(200, {**ok, **LIMIT_HEADERS}, envelope({"status": 3}))],
         lambda: limit.call(Request(STATUS, "/tasks/t1/status", key=0, task_id="t1"))),
        ("limit_odd_headers", [Answer(200, {"X-RateLimit-Remaining": "-1", "X-RateLimit-Limit": "1.5",
                                            "X-RateLimit-Reset": ""}, envelope([]))],
         lambda: limit.call(Request(LIST, "/tasks?limit=5", key=0))),
        ("over_429", [Answer(429, {**problem_type, "X-RateLimit-Remaining": "0", "Retry-After": "2",
                                   **LIMIT_HEADERS}, json.dumps(PROBLEM).encode())],
         lambda: over.call(Request(CREATE_FILE, "/files", json_payload({"files": []}), 0))),
        ("over_429_legacy", [Answer(429, {"Content-Type": "application/json", "X-RateLimit-Remaining": "0",
                                          "Retry-After": "2"}, json.dumps(LEGACY).encode())],
         lambda: over.call(Request(CREATE_FILE, "/files", json_payload({"files": []}), 0))),
        ("stream_ndjson", [Answer(200, {}, lines=[
            json.dumps({"data": RUNNING, "fields": ["status"]}).encode() + b"\n",
            b'{"type":"heartbeat"}\n', b"not json\n", json.dumps(TASK).encode() + b"\n"])],
         lambda: plain.stream("t1", "ndjson", deadline)),
        ("stream_ndjson_tail", [Answer(200, {}, lines=[json.dumps(RUNNING).encode() + b"\n"],
                                       rest=json.dumps(TASK).encode())],
         lambda: plain.stream("t1", "ndjson", deadline)),
        ("stream_sse", [Answer(200, {}, lines=[
            b": ping\n", b"\n", b"data: " + json.dumps(RUNNING).encode() + b"\n", b"\n",
            b"event: update\n", b"data: " + json.dumps(TASK).encode() + b"\n", b"\n"])],
         lambda: plain.stream("t1", "sse", deadline)),
        ("stream_429", [Answer(429, {"X-RateLimit-Remaining": "0"}, b"{}")],
         lambda: plain.stream("t1", "ndjson", deadline)),
        ("stream_500", [Answer(500, {}, b"boom")], lambda: plain.stream("t1", "sse", deadline)),
        ("stream_no_answer", [ConnectionRefusedError("refused")],
         lambda: plain.stream("t1", "ndjson", deadline)),
    ]
    out: dict[str, Any] = {}
    for name, script, action in cases:
        agent.script = list(script)
        session.lines = []
        result = action()
        assert not agent.script, name
        entry: dict[str, Any] = {"lines": list(session.lines)}
        if isinstance(result, StreamResult):
            entry["stream"] = {"closed": result.closed, "events": result.events, "nbytes": result.nbytes,
                               "statuses": result.statuses, "error": result.error,
                               "terminal": result.terminal is not None}
        out[name] = entry
    out["observers"] = [plain.observer, limit.observer, over.observer]
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
