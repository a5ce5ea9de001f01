"""The sans-I/O stream parsers, fed byte by byte and in odd chunks."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from harness.net.decoders import NdjsonDecoder, SseDecoder

NDJSON = (b'{"data":{"id":"t","status":1},"fields":["status"]}\n'
          b'{"type":"heartbeat"}\n'
          b"\n"
          b'{"data":{"id":"t","status":10},"fields":["status"]}\n')


def _feed_in_chunks(decoder: NdjsonDecoder | SseDecoder, data: bytes, cuts: list[int]) -> list[str]:
    kinds = []
    last = 0
    for cut in [*sorted(set(c % (len(data) + 1) for c in cuts)), len(data)]:
        kinds += [e.kind for e in decoder.feed(data[last:cut])]
        last = cut
    kinds += [e.kind for e in decoder.close()]
    return kinds


def test_ndjson_lines_and_heartbeats() -> None:
    events = NdjsonDecoder().feed(NDJSON)
    assert [e.kind for e in events] == ["update", "heartbeat", "update"]
    assert events[2].payload == {"data": {"id": "t", "status": 10}, "fields": ["status"]}


def test_ndjson_byte_by_byte_equals_whole() -> None:
    decoder = NdjsonDecoder()
    kinds = [e.kind for b in NDJSON for e in decoder.feed(bytes([b]))]
    assert kinds == ["update", "heartbeat", "update"]
    assert decoder.pending == 0


@given(st.lists(st.integers(min_value=0, max_value=500), max_size=20))
def test_ndjson_any_chunking(cuts: list[int]) -> None:
    assert _feed_in_chunks(NdjsonDecoder(), NDJSON, cuts) == ["update", "heartbeat", "update"]


def test_ndjson_flags_non_json_and_non_objects() -> None:
    events = NdjsonDecoder().feed(b": ping\n[1,2]\ndata: {}\n")
    assert [e.kind for e in events] == ["invalid", "invalid", "invalid"]
    assert events[0].raw == b": ping"


def test_ndjson_trailing_line_without_newline_is_kept_on_close() -> None:
    decoder = NdjsonDecoder()
    assert decoder.feed(b'{"a":1}') == []
    assert [e.payload for e in decoder.close()] == [{"a": 1}]


SSE = (b"id: 1\ndata: {\"data\":{\"status\":1},\"fields\":[]}\n\n"
       b": heartbeat\n\n"
       b"event: heartbeat\ndata: {}\n\n"
       b"id: 2\r\ndata: {\"data\":\r\ndata: {\"status\":10},\"fields\":[]}\r\n\r\n")


def test_sse_events_comments_and_multiline_data() -> None:
    events = SseDecoder().feed(SSE)
    assert [e.kind for e in events] == ["update", "heartbeat", "heartbeat", "update"]
    assert events[0].event_id == "1"
    assert events[3].payload == {"data": {"status": 10}, "fields": []}


@given(st.lists(st.integers(min_value=0, max_value=500), max_size=20))
def test_sse_any_chunking(cuts: list[int]) -> None:
    assert _feed_in_chunks(SseDecoder(), SSE, cuts) == ["update", "heartbeat", "heartbeat", "update"]


def test_sse_unterminated_event_is_dropped_and_bad_data_flagged() -> None:
    decoder = SseDecoder()
    assert [e.kind for e in decoder.feed(b"data: not json\n\ndata: {\"a\":1}\n")] == ["invalid"]
    assert decoder.close() == []
