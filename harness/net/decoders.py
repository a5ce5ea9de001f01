"""Sans-I/O stream parsers: feed bytes, get events. Shared by the client, Locust users and tests."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

EventKind = Literal["update", "heartbeat", "invalid"]


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One decoded item of a task stream.

    kind is "update" (a JSON object that is not a heartbeat), "heartbeat", or "invalid"
    (a line or SSE data that is not a JSON object; `raw` holds it).
    """

    kind: EventKind
    payload: dict[str, Any] | None
    raw: bytes
    event_id: str | None = None
    event_name: str | None = None


def _decode(raw: bytes, event_id: str | None = None, name: str | None = None) -> StreamEvent:
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        return StreamEvent("invalid", None, raw, event_id, name)
    if not isinstance(value, dict):
        return StreamEvent("invalid", None, raw, event_id, name)
    if value.get("type") == "heartbeat" and len(value) == 1:
        return StreamEvent("heartbeat", value, raw, event_id, name)
    return StreamEvent("update", value, raw, event_id, name)


def _lines(buffer: bytearray, data: bytes) -> list[bytes]:
    """Append `data` to `buffer`; take out and return every complete line (without `\\r\\n`)."""
    buffer += data
    lines: list[bytes] = []
    while (end := buffer.find(b"\n")) >= 0:
        lines.append(bytes(buffer[:end]).rstrip(b"\r"))
        del buffer[: end + 1]
    return lines


@dataclass
class NdjsonDecoder:
    """Splits a byte stream on `\\n`; every non-blank line is one event."""

    _buffer: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> list[StreamEvent]:
        return [_decode(line) for line in _lines(self._buffer, data) if line.strip()]

    def close(self) -> list[StreamEvent]:
        """End of stream: a trailing line without `\\n` still counts (flagged as such by `raw`)."""
        rest = bytes(self._buffer).strip()
        self._buffer.clear()
        return [_decode(rest)] if rest else []

    @property
    def pending(self) -> int:
        return len(self._buffer)


@dataclass
class SseDecoder:
    """Server-sent events per the WHATWG rules; comment lines are heartbeats."""

    _buffer: bytearray = field(default_factory=bytearray)
    _data: list[bytes] = field(default_factory=list)
    _event_id: str | None = None
    _name: str | None = None
    _comment: bool = False

    def feed(self, data: bytes) -> list[StreamEvent]:
        return [event for line in _lines(self._buffer, data) if (event := self._line(line)) is not None]

    def _line(self, line: bytes) -> StreamEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(b":"):
            self._comment = True
            return None
        name, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"id":
            self._event_id = value.decode("utf-8", "replace")
        elif name == b"event":
            self._name = value.decode("utf-8", "replace")
        return None

    def _dispatch(self) -> StreamEvent | None:
        data, event_id, name, comment = self._data, self._event_id, self._name, self._comment
        self._data, self._name, self._comment = [], None, False
        if not data:
            if comment or name == "heartbeat":
                return StreamEvent("heartbeat", None, b"", event_id, name)
            return None
        raw = b"\n".join(data)
        if name == "heartbeat":
            return StreamEvent("heartbeat", None, raw, event_id, name)
        return _decode(raw, event_id, name)

    def close(self) -> list[StreamEvent]:
        """End of stream: an event without its blank line is dropped, as browsers do."""
        self._buffer.clear()
        self._data = []
        return []
