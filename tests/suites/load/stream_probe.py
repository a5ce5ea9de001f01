"""Run by test_stream_deadlines.py in its own process (gevent patches the whole process).

Reads scripted raw streams with `read_stream` (no sockets): a stream that falls silent, one that
drips bytes without ever ending a line, one past the line cap. Prints one JSON object: for each
case, how the read ended and how long it took.
"""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
from probe_environment import probe_environment  # noqa: E402

from harness.suites.load.streaming import StreamLog, read_stream  # noqa: E402
from harness.suites.load.users import ApiUser  # noqa: E402

RUNNING = b'{"data":{"id":"t1","status":7},"fields":["status"]}\n'


class Raw:
    """A raw response: `script` items are bytes to receive or seconds to stay silent first."""

    block_size = 65536

    def __init__(self, script: list[Any]) -> None:
        self._script = list(script)
        self._body_buffer = bytearray()
        self.message_complete = False
        self._sock = self

    def recv(self, size: int) -> bytes:
        while self._script:
            item = self._script.pop(0)
            if isinstance(item, float):
                gevent.sleep(item)
                continue
            return bytes(item)
        gevent.sleep(3600)  # silent for good
        return b""

    def feed(self, data: bytes) -> None:
        self._body_buffer += data

    def release(self) -> None:
        pass


def main() -> int:
    class Probe(ApiUser):
        def scenario(self) -> None:
            pass

    _, session = probe_environment(Probe, "http://127.0.0.1:9")
    cases = {
        "silent": ([RUNNING], 0.3, 5.0),
        "drip": ([RUNNING] + [0.05, b"x"] * 1000, 5.0, 0.6),
        "overlong": ([RUNNING, b"y" * (1 << 20), b"y" * 16], 5.0, 5.0),
    }
    out: dict[str, Any] = {}
    for name, (script, idle_s, total_s) in cases.items():
        now = time.monotonic_ns()
        log = StreamLog(session, "t1", "ndjson", "o", "k1", "c", now, time.time())
        read_stream(Raw(script), log, now + int(total_s * 1e9), idle_s=idle_s)
        failure = log.finish()
        out[name] = {"took": (time.monotonic_ns() - now) / 1e9, "cut": log.result.cut,
                     "timed_out": log.result.timed_out, "events": log.result.events, "failure": failure}
    out["reasons"] = session.metrics.reasons
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
