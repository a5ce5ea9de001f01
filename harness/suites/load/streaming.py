"""Reading one task stream: bytes in as they arrive, each event an Observation and a latency.

Bounded three ways: the decoder caps a line (event) and the whole stream, a silence past the
idle deadline and the task's deadline end the read. Each is an error with its reason.
`read_stream` reads a task stream (into a `StreamLog`) or an agent chat's (a `chats.ChatTurn`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import gevent  # type: ignore[import-untyped]

from harness.checks.envelope import task_of_update
from harness.history import Observation, StreamKind
from harness.net.bounded import STREAM_IDLE_S
from harness.net.decoders import NdjsonDecoder, SseDecoder, StreamEvent
from harness.suites.load.answers import AnswerTimeout, read_some
from harness.suites.load.facts import NO_DIGEST, Digest, task_fields
from harness.suites.load.session import LoadSession
from harness.suites.load.stream_state import StreamFormat, StreamResult, StreamSink

TERMINAL_GRACE_S = 2.0
monotonic_ns = time.monotonic_ns


@dataclass
class StreamLog:
    """One open stream's history and latencies: an Observation per event, then the close."""

    session: LoadSession
    task_id: str
    fmt: StreamFormat
    observer: str
    key: str  # the key's label (k1, k2, ...)
    conn: str
    send_ns: int
    wall: float
    result: StreamResult = field(default_factory=StreamResult)
    seq: int = 0
    last_ns: int = 0

    @property
    def metric(self) -> str:
        return f"stream_{self.fmt}"

    def _record(self, now: int, kind: StreamKind, digest: Digest = NO_DIGEST) -> None:
        self.session.record(Observation(
            self.task_id, self.observer, self.fmt, self.send_ns, now, self.wall, 200, digest.status,
            digest.output, digest.error, digest.updated_at, conn=self.conn, seq=self.seq, kind=kind,
            trail=digest.trail, key=self.key))

    def event(self, event: StreamEvent, now: int) -> None:
        """One decoded event: its Observation, the first terminal update, time to first event or gap."""
        result, metrics = self.result, self.session.metrics
        digest = NO_DIGEST
        if event.kind == "update" and event.payload is not None:
            current = task_of_update(event.payload)
            digest = task_fields(current)
            status = current.get("status")
            result.statuses.append(status)
            if result.terminal is None and self.session.is_terminal(status):
                result.terminal, result.terminal_ns = current, now
        elif event.kind == "invalid" and event.reason is not None:
            result.cut = event.reason  # past a cap: the reader stops here
        elif event.kind == "invalid":
            metrics.error(self.metric, "non-JSON stream event",
                          {"task": self.task_id, "line": event.raw[:200].decode("utf-8", "replace")})
        if self.last_ns:
            metrics.hdr.record_ns(f"{self.fmt}.heartbeat_gap", now - self.last_ns)
        else:
            metrics.hdr.record_ns(f"{self.fmt}.ttfe", now - self.send_ns)
        self._record(now, event.kind, digest)
        self.last_ns = now
        self.seq += 1
        result.events += 1

    def finish(self) -> str | None:
        """After the read: the close line, time to terminal, stream counters; why it failed, or None."""
        result, metrics = self.result, self.session.metrics
        if result.closed:
            self._record(monotonic_ns(), "close")
        if result.terminal is not None:
            metrics.hdr.record_ns(f"{self.fmt}.terminal", result.terminal_ns - self.send_ns)
        metrics.count("streams")
        if result.cut is not None:
            metrics.error(self.metric, f"stream cut: {result.cut}", {"task": self.task_id,
                                                                     "bytes": result.nbytes})
            return f"stream cut: {result.cut}"
        if result.error is not None:
            metrics.error(self.metric, "stream broke off", {"task": self.task_id, "error": result.error})
            return "stream broke off"
        if result.terminal is None and result.closed:
            metrics.count("streams_without_terminal")
            return "stream closed without a terminal update"
        if result.terminal is None:
            metrics.count("streams_past_deadline")
            metrics.error(self.metric, "no terminal update within the task deadline",
                          {"task": self.task_id, "bytes": result.nbytes, "events": result.events})
            return "no terminal update within the task deadline"
        if not result.closed:
            metrics.count("streams_not_closed")
            return "stream not closed after the terminal update"
        return None


def read_stream(raw: Any, log: StreamSink, deadline_ns: int, idle_s: float = STREAM_IDLE_S) -> None:
    """Read `raw` as it arrives into `log` until the server closes it, it breaks, or time is up.

    Time is up at the deadline, after `idle_s` without a byte, or a short grace after the
    terminal update (the server should close right after it); a line or stream past the
    decoder's caps ends the read too (`result.cut`). `raw` is released in any case. `log.event`
    runs between two reads, outside the idle deadline: it may send a request of its own (a chat
    turn posts a tool's result there) while the task deadline keeps running.
    """
    decoder: NdjsonDecoder | SseDecoder = NdjsonDecoder() if log.fmt == "ndjson" else SseDecoder()
    result = log.result
    timer = gevent.Timeout(max(0.05, (deadline_ns - monotonic_ns()) / 1e9))
    timer.start()
    silent = AnswerTimeout(f"no byte for {idle_s:g} s")
    graced = False
    try:
        while True:
            with gevent.Timeout(idle_s, silent):
                chunk = read_some(raw)
            now = monotonic_ns()
            if not chunk:
                for event in decoder.close():
                    log.event(event, now)
                result.closed = True
                break
            result.nbytes += len(chunk)
            for event in decoder.feed(chunk):
                log.event(event, now)
            if result.cut is not None:
                break
            if result.terminal is not None and not graced:
                graced = True
                if (deadline_ns - now) / 1e9 > TERMINAL_GRACE_S:
                    timer.cancel()
                    timer = gevent.Timeout(TERMINAL_GRACE_S)
                    timer.start()
    except gevent.Timeout as fired:
        if fired is not timer:
            raise
        result.timed_out = True
    except AnswerTimeout as exc:
        result.cut = exc.reason
    except Exception as exc:  # a broken connection or chunked framing
        result.error = f"{type(exc).__name__}: {exc}"[:200]
    finally:
        timer.cancel()
        raw.release()
