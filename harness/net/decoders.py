"""Sans-I/O stream parsers: feed bytes, get events. Shared by the client, Locust users and tests.

Both decoders run in time linear in their input however it is chunked, and hold at most
`max_line` bytes of a line; past `max_stream` bytes in all they stop reading.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

EventKind = Literal["update", "heartbeat", "invalid"]

MIB = 1 << 20
MAX_LINE = 1 * MIB
MAX_STREAM = 64 * MIB
_BOM = b"\xef\xbb\xbf"
_HEAD = 200  # bytes of an overlong line kept in the event as evidence
_CR, _LF = 0x0D, 0x0A


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One decoded item of a task stream.

    kind is "update" (a JSON object that is not a heartbeat), "heartbeat", or "invalid"
    (a line or SSE data that is not a JSON object, `raw` holding it; or, with `reason` set,
    a line, event or stream past its size cap, `raw` holding at most its first bytes).
    """

    kind: EventKind
    payload: dict[str, Any] | None
    raw: bytes
    event_id: str | None = None
    event_name: str | None = None
    reason: str | None = None


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


class _LineDecoder:
    """Splits bytes into lines within the caps; subclasses turn lines into events."""

    __slots__ = ("_after_cr", "_buffer", "_head", "_seen", "_skipping", "_started", "_stopped",
                 "max_line", "max_stream")

    def __init__(self, *, max_line: int = MAX_LINE, max_stream: int = MAX_STREAM) -> None:
        if max_line < 1 or max_stream < 1:
            raise ValueError("size caps must be positive")
        self.max_line = max_line
        self.max_stream = max_stream
        self._buffer = bytearray()  # the line begun but not ended; never more than max_line
        self._head = b""  # the first bytes while they may still be a BOM
        self._seen = 0
        self._after_cr = False  # the last chunk ended on a CR: an LF next belongs to it
        self._skipping = False  # inside an overlong line, already reported
        self._started = False
        self._stopped = False

    @property
    def stopped(self) -> bool:
        """The stream passed `max_stream`: nothing more is decoded, so nothing more need be read."""
        return self._stopped

    @property
    def pending(self) -> int:
        """Bytes held that belong to no event yet."""
        return len(self._buffer) + len(self._head)

    def feed(self, data: bytes) -> list[StreamEvent]:
        if self._stopped:
            return []
        room = self.max_stream - self._seen
        over = len(data) > room
        if over:
            data = data[:room]
        self._seen += len(data)
        events: list[StreamEvent] = []
        if not self._started:
            data = self._strip_bom(data)
        self._split(data, events)
        if over:
            self._stop()
            events.append(self._overflow(b"", f"stream longer than {self.max_stream} bytes "
                                              "(the rest is not read)"))
        return events

    def _strip_bom(self, data: bytes) -> bytes:
        head = self._head + data
        if len(head) < len(_BOM) and _BOM.startswith(head):
            self._head = head  # too short to tell yet
            return b""
        self._started, self._head = True, b""
        return head[len(_BOM):] if head.startswith(_BOM) else head

    def _begin_close(self, events: list[StreamEvent]) -> None:
        """Feed the bytes held as a possible BOM: at the end they are not one."""
        if not self._started and not self._stopped:
            self._started, head, self._head = True, self._head, b""
            self._split(head, events)

    def _stop(self) -> None:
        self._stopped = True
        self._buffer = bytearray()
        self._head = b""

    def _ends(self, data: bytes, pos: int) -> list[tuple[int, int]]:
        """(start, end) of each line terminator in data[pos:]."""
        raise NotImplementedError

    def _split(self, data: bytes, events: list[StreamEvent]) -> None:
        if not data:
            return
        pos = 0
        if self._after_cr:
            self._after_cr = False
            if data[0] == _LF:
                pos = 1
        for start, end in self._ends(data, pos):
            self._end_line(data, pos, start, events)
            pos = end
        if pos == len(data):
            self._after_cr = data[-1] == _CR
            return
        if self._skipping:
            return
        if len(self._buffer) + len(data) - pos > self.max_line:
            events.append(self._too_long(data, pos))
            self._buffer.clear()
            self._skipping = True
        else:
            self._buffer += memoryview(data)[pos:]

    def _end_line(self, data: bytes, start: int, end: int, events: list[StreamEvent]) -> None:
        if self._skipping:
            self._skipping = False
            return
        if len(self._buffer) + end - start > self.max_line:
            events.append(self._too_long(data, start))
            self._buffer.clear()
            return
        if self._buffer:
            self._buffer += memoryview(data)[start:end]
            line = bytes(self._buffer)
            self._buffer.clear()
        else:
            line = data[start:end]
        event = self._line(line)
        if event is not None:
            events.append(event)

    def _too_long(self, data: bytes, start: int) -> StreamEvent:
        keep = min(_HEAD, self.max_line)
        head = (bytes(self._buffer[:keep]) + data[start:start + keep])[:keep]
        return self._overflow(head, f"line longer than {self.max_line} bytes (the rest is skipped)")

    def _overflow(self, head: bytes, reason: str) -> StreamEvent:
        return StreamEvent("invalid", None, head, reason=reason)

    def _line(self, line: bytes) -> StreamEvent | None:
        raise NotImplementedError


class NdjsonDecoder(_LineDecoder):
    """Splits a byte stream on `\\n` (a CR before it is dropped); every non-blank line is one event."""

    __slots__ = ()

    def _ends(self, data: bytes, pos: int) -> list[tuple[int, int]]:
        ends = []
        while (end := data.find(b"\n", pos)) >= 0:
            ends.append((end, end + 1))
            pos = end + 1
        return ends

    def _line(self, line: bytes) -> StreamEvent | None:
        if line.endswith(b"\r"):
            line = line[:-1]
        return _decode(line) if line.strip() else None

    def close(self) -> list[StreamEvent]:
        """End of stream: a trailing line without `\\n` still counts (flagged as such by `raw`)."""
        events: list[StreamEvent] = []
        self._begin_close(events)
        rest = b"" if self._skipping or self._stopped else bytes(self._buffer).strip()
        self._buffer.clear()
        self._skipping = False
        return [*events, _decode(rest)] if rest else events


class SseDecoder(_LineDecoder):
    """Server-sent events per the WHATWG rules; comment lines are heartbeats.

    Lines end with CRLF, LF or CR; a leading BOM is dropped; an event whose data passes
    `max_line` bytes is reported once and dropped.
    """

    __slots__ = ("_comment", "_data", "_dropped", "_event_id", "_name", "_size")

    def __init__(self, *, max_line: int = MAX_LINE, max_stream: int = MAX_STREAM) -> None:
        super().__init__(max_line=max_line, max_stream=max_stream)
        self._data: list[bytes] = []
        self._size = 0  # bytes of data joined so far, for the cap
        self._dropped = False  # this event passed a cap and is not dispatched
        self._event_id: str | None = None
        self._name: str | None = None
        self._comment = False

    def _ends(self, data: bytes, pos: int) -> list[tuple[int, int]]:
        # Both searches resume where they stopped, so a chunk is scanned once.
        ends = []
        size = len(data)
        cr, lf = data.find(b"\r", pos), data.find(b"\n", pos)
        while cr >= 0 or lf >= 0:
            if cr < 0 or 0 <= lf < cr:
                start, end = lf, lf + 1
            else:
                start, end = cr, cr + 2 if cr + 1 < size and data[cr + 1] == _LF else cr + 1
            ends.append((start, end))
            if cr >= 0 and cr < end:
                cr = data.find(b"\r", end)
            if lf >= 0 and lf < end:
                lf = data.find(b"\n", end)
        return ends

    def _overflow(self, head: bytes, reason: str) -> StreamEvent:
        self._drop()
        return StreamEvent("invalid", None, head, self._event_id, reason=reason)

    def _drop(self) -> None:
        self._data, self._size, self._dropped = [], 0, True

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
            if self._dropped:
                return None
            self._size += len(value) + (1 if self._data else 0)
            if self._size > self.max_line:
                head = b"\n".join([*self._data, value])[:_HEAD]
                return self._overflow(head, f"event data longer than {self.max_line} bytes "
                                            "(the event is dropped)")
            self._data.append(value)
        elif name == b"id":
            self._event_id = value.decode("utf-8", "replace")
        elif name == b"event":
            self._name = value.decode("utf-8", "replace")
        return None

    def _dispatch(self) -> StreamEvent | None:
        data, event_id, name, comment, dropped = (self._data, self._event_id, self._name,
                                                  self._comment, self._dropped)
        self._data, self._size, self._name, self._comment, self._dropped = [], 0, None, False, False
        if dropped:
            return None
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
        self._head, self._skipping, self._after_cr = b"", False, False
        self._data, self._size, self._dropped, self._name, self._comment = [], 0, False, None, False
        return []
