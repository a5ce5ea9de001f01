"""Task streams: a snapshot, each change, the terminal update, framed as NDJSON or SSE, with heartbeats."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from harness.server.engine import Engine, Task
from harness.server.faults import StreamFaults

NDJSON = "application/x-ndjson"
SSE = "text/event-stream"


def wants_sse(accept: str) -> bool:
    """NDJSON unless the client asks for SSE and not for NDJSON (NDJSON is the SDKs' format)."""
    accept = accept.lower()
    return SSE in accept and NDJSON not in accept


class TaskStream:
    """One client's stream of one task; iterate it for the bytes to send."""

    def __init__(self, engine: Engine, task: Task, sse: bool, heartbeat_interval: float,
                 progress_interval: float, faults: StreamFaults) -> None:
        self.engine, self.task, self.faults = engine, task, faults
        self.sse = faults.sse(sse)
        self.heartbeat_interval = heartbeat_interval
        self.progress_interval = progress_interval
        self.heartbeat = faults.heartbeat(self.sse, b": heartbeat\n\n" if self.sse
                                          else b'{"type":"heartbeat"}\n')

    @property
    def media_type(self) -> str:
        return self.faults.media_type(SSE if self.sse else NDJSON)

    def frame(self, line: bytes, version: int) -> bytes:
        """One update as an SSE event (its id the task version) or an NDJSON line."""
        line = self.faults.recode(line)
        if self.sse:
            return b"id: %d\ndata: " % version + line + b"\n\n"
        return line + b"\n"

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        engine, task = self.engine, self.task
        inbox = engine.subscribe(task)
        try:
            if opening := self.faults.opening(self.sse):
                yield opening
            snapshot_version = task.version
            fields = self.faults.snapshot_fields(list(engine.public_task(task)), task.terminal)
            if task.terminal:
                async for chunk in self._end(engine.update_line(task, fields or []), snapshot_version):
                    yield chunk
                return
            if fields is not None:
                first = self.frame(engine.update_line(task, fields), snapshot_version)
                yield first
                # stream-status-regression may replay the snapshot after the first change, so a
                # stream that sees one change before the end shows the fault too.
                self.faults.replay(first)
            loop = asyncio.get_running_loop()
            last_update = loop.time()
            keepalive = self.faults.keepalive_updates()
            last_sent = last_update  # heartbeats-only: heartbeats keep time across dropped changes
            while True:
                wait = min(self.heartbeat_interval,
                           max(0.0, last_update + self.progress_interval - loop.time())) if keepalive \
                    else max(0.0, last_sent + self.heartbeat_interval - loop.time())
                update = await inbox.next(wait)
                if update is None:
                    if self.faults.silent_when_idle():
                        continue
                    if keepalive and loop.time() - last_update >= self.progress_interval:
                        # A non-heartbeat line keeps the Python SDK's 30 s idle check quiet.
                        yield self.frame(engine.update_line(task, []), task.version)
                        last_update = loop.time()
                    else:
                        yield self.heartbeat
                    last_sent = loop.time()
                    continue
                version, line, terminal = update
                if version <= snapshot_version:
                    continue  # already in the snapshot
                if self.faults.drops(line):
                    continue
                if terminal:
                    async for chunk in self._end(line, version):
                        yield chunk
                    return
                sent = self.frame(line, version)
                yield sent
                last_sent = loop.time()
                if (replayed := self.faults.replay(sent)) is not None:
                    yield replayed
                last_update = loop.time()
        finally:
            engine.unsubscribe(task, inbox)

    async def _end(self, line: bytes, version: int) -> AsyncIterator[bytes]:
        """The terminal update, after which the stream closes."""
        terminal = self.faults.terminal(line, lambda: self.engine.public_task(self.task)["status"])
        if terminal is None:
            return
        yield self.frame(terminal, version)
        for offset, fields in enumerate(self.faults.after_terminal(), start=1):
            yield self.frame(self.engine.update_line(self.task, fields), version + offset)
        while self.faults.stays_open():
            await asyncio.sleep(self.heartbeat_interval)
            yield self.heartbeat
