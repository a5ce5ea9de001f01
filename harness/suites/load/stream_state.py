"""What a stream read delivered, and what `streaming.read_stream` reads into (no gevent, no Locust:
the sans-I/O chat turn of `chats` builds on it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from harness.net.decoders import StreamEvent

StreamFormat = Literal["ndjson", "sse"]


@dataclass
class StreamResult:
    """What a stream delivered: its first terminal update (and when), how it ended, the statuses."""

    terminal: dict[str, Any] | None = None
    terminal_ns: int = 0
    closed: bool = False
    timed_out: bool = False
    error: str | None = None
    cut: str | None = None  # why the harness stopped reading: a cap or the idle deadline
    events: int = 0
    nbytes: int = 0
    statuses: list[Any] = field(default_factory=list)


class StreamSink(Protocol):
    """What `read_stream` reads into: a task stream (`StreamLog`) or a chat turn (`chats.ChatTurn`)."""

    @property
    def fmt(self) -> StreamFormat: ...

    @property
    def result(self) -> StreamResult: ...

    def event(self, event: StreamEvent, now: int) -> None: ...
