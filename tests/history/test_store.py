"""The history reader: its fast decoders (lines, blocks of lines) give exactly what the plain path gives."""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from harness.history import (
    HISTORY_FILE,
    CheckedRecord,
    HistoryError,
    Observation,
    ObservationRecord,
    compress_history,
    read_history,
    read_records,
    store,
)
from harness.history.store import _parse, _parse_slow

# JSON values of every kind, surrogates and big numbers included (json.dumps escapes them).
_text = st.text(st.characters(codec=None, categories=None), max_size=8)
_scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=2**63 - 2)
            | st.floats(allow_nan=False) | _text)
_json = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(_text, inner, max_size=3), max_leaves=8)
_maybe_text = st.none() | _text
_maybe_int = st.none() | st.integers()


@st.composite
def _observations(draw: st.DrawFn) -> Observation:
    return Observation(
        draw(_maybe_text), draw(_text), draw(st.sampled_from(["run", "get", "ndjson"]) | _text),
        draw(st.integers()), draw(_maybe_int), draw(st.floats(allow_nan=False) | st.integers()),
        http=draw(_maybe_int), status=draw(_json), output=draw(st.none() | st.booleans()),
        error=draw(st.none() | st.booleans()), updated_at=draw(_maybe_text),
        outcome=draw(st.sampled_from(["ok", "timeout"]) | _text), conn=draw(_maybe_text),
        seq=draw(_maybe_int), kind=draw(st.none() | st.sampled_from(["update", "heartbeat"])),
        trail=draw(st.none() | st.lists(st.integers(), max_size=4)), key=draw(_maybe_text),
        extra=draw(st.dictionaries(_text, _json, max_size=3)))


_NAMES = [*Observation.__dataclass_fields__, "other"]


@st.composite
def _hostile_lines(draw: st.DrawFn) -> str:
    """Observation-like objects with any JSON under the known names, then perhaps damaged."""
    fields = draw(st.dictionaries(st.sampled_from(_NAMES), _json | st.integers(), max_size=8))
    base = {"observer": "o", "channel": "get", "send_ns": 1, "wall": 1.5}
    data = {**base, **fields} if draw(st.booleans()) else fields
    line = json.dumps(data, ensure_ascii=draw(st.booleans()))
    damage = draw(st.sampled_from(["", "dup", "nan", "cut", "raw", "surrogate", "array", "bom", "tail"]))
    if damage == "dup" and len(line) > 2:
        line = line[:-1] + ', "send_ns": ' + draw(st.sampled_from(['"x"', "2", "2.0", "true"])) + "}"
    elif damage == "nan":
        line = line.replace("1.5", draw(st.sampled_from(["NaN", "Infinity", "1e400", "-0.0", "15e-1"])))
    elif damage == "cut":
        line = line[:draw(st.integers(0, len(line)))]
    elif damage == "raw":
        line = line.replace('"o"', '"o\x01\x7f\u2028"')
    elif damage == "surrogate":
        line = line.replace('"o"', draw(st.sampled_from(['"\\ud800"', '"\\udc00x"', '"\\ud83d\\ude00"'])))
    elif damage == "array":
        line = "[" + line + "]"
    elif damage == "bom":
        line = "\ufeff" + line
    elif damage == "tail":
        line += draw(st.sampled_from(["  ", " x", "\r", "\t", "{}"]))
    return line + "\n"


def _outcome(parse: Any, line: str) -> str:
    """What a parser makes of a line, strictly: repr tells 5 from 5.0 and True from 1."""
    try:
        return repr(parse(line, 6))
    except HistoryError as exc:
        return f"HistoryError: {exc}"


_FIELDS = tuple(Observation.__dataclass_fields__)


def _values(record: Any) -> str:
    """A record's fields as a repr (a decoded struct's repr names its own type)."""
    return repr(tuple(getattr(record, name) for name in _FIELDS))


def _record_outcome(parse: Any, line: str) -> str:
    try:
        return _values(parse(line, 1))
    except HistoryError as exc:
        return f"HistoryError: {exc}"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_observations())
def test_written_observations_read_back_the_same_by_both_paths(obs: Observation) -> None:
    line = obs.to_json() + "\n"
    assert _outcome(_parse, line) == _outcome(_parse_slow, line)
    assert _parse(line, 0) == obs


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_hostile_lines())
def test_hostile_lines_give_what_the_plain_path_gives(line: str) -> None:
    assert _outcome(_parse, line) == _outcome(_parse_slow, line)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_hostile_lines())
def test_hostile_lines_read_as_records_give_the_plain_paths_values(
        tmp_path_factory: pytest.TempPathFactory, line: str) -> None:
    """read_records over a one-line file (lines a UTF-8 file can hold; a CR ends a line there)."""
    assume(not _unwritable(line) and "\r" not in line)
    path = tmp_path_factory.getbasetemp() / "one.jsonl"
    path.write_text(line, encoding="utf-8")
    try:
        read = "; ".join(_values(r) for r in read_records(path))
    except HistoryError as exc:
        read = f"HistoryError: {exc}"
    assert read == _record_outcome(_parse_slow, line)


def _unwritable(line: str) -> bool:
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


@pytest.mark.parametrize("line", [
    '{"observer":"o","channel":"get","send_ns":1,"wall":5}',  # an int wall stays an int
    '{"observer":"o","channel":"get","send_ns":1,"wall":1.5,"status":123456789012345678901234567890}',
    '{"observer":"o","channel":"get","send_ns":1,"wall":1.5,"status":"\\ud800"}',  # json only
    '{"observer":"o","channel":"get","send_ns":1,"wall":1.5,"outcome":null}',
    '{"observer":"o","channel":"get","send_ns":1,"wall":1.5,"extra":[]}',
    '{"obs\\u0065rver":"o","channel":"get","send_ns":1,"wall":1.5,"trail":[1,true]}',
    '{"channel":"get","send_ns":1,"wall":1.5}',  # observer missing
    '{"observer":"o","channel":"get","send_ns":1,"wall":NaN}',
    '["observer"]', "", "not json",
])
def test_edge_lines(line: str) -> None:
    assert _outcome(_parse, line + "\n") == _outcome(_parse_slow, line + "\n")


def test_each_observation_gets_its_own_empty_extra() -> None:
    line = '{"observer":"o","channel":"get","send_ns":1,"wall":1.5}\n'
    first, second = _parse(line, 0), _parse(line, 1)
    first.extra["x"] = 1
    assert second.extra == {}


def test_files_torn_last_line_crlf_and_gzip(tmp_path: Path) -> None:
    lines = [Observation(f"t{i}", "o", "get", i, i + 1, 0.5, http=200, status=9).to_json() for i in range(3)]
    plain = tmp_path / "h.jsonl"
    plain.write_bytes(("\r\n".join(lines) + "\r\n" + lines[0][:20]).encode())  # torn: skipped
    assert [o.task for o in read_history(plain)] == ["t0", "t1", "t2"]
    packed = tmp_path / "h.jsonl.gz"
    packed.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    assert [o.task for o in read_history(packed)] == ["t0", "t1", "t2"]
    plain.write_text(lines[0] + "\n{oops}\n" + lines[1] + "\n")
    with pytest.raises(HistoryError, match="line 2: not an observation"):
        list(read_history(plain))


def test_a_lone_surrogate_takes_the_plain_path() -> None:
    # msgspec raises UnicodeEncodeError, not its own error, on a str it cannot encode.
    line = '{"task": "\ud800", "observer": "o", "channel": "get", "send_ns": 1, "wall": 0}\n'
    assert _outcome(_parse, line) == _outcome(_parse_slow, line)


def test_the_record_protocol_names_only_observations_fields() -> None:
    # Every name the protocol promises is a field of Observation, hence of the decoded struct
    # built from them (a field added to Observation needs no change here to be read).
    for protocol in (CheckedRecord, ObservationRecord):  # the second adds to the first
        members = [name for name in vars(protocol) if not name.startswith("_")]
        assert members and [name for name in _FIELDS if name in members] == members


def test_records_read_the_same_values_as_observations(tmp_path: Path) -> None:
    lines = [Observation(f"t{i}", "o", "get", i, i + 1, 0.5, http=200, status=9, trail=[1, 9],
                         extra={"rl_group": "get"}).to_json() for i in range(3)]
    odd = '{"observer":"o","channel":"get","send_ns":1,"wall":5,"extra":[]}'  # the plain path's
    path = tmp_path / "h.jsonl"
    path.write_text("\n".join([lines[0], odd, lines[1], lines[2]]) + "\n" + lines[0][:20])  # torn
    records = list(read_records(path))
    assert [_values(r) for r in records] == [_values(o) for o in read_history(path)]
    assert [type(r) is Observation for r in records] == [False, True, False, False]
    path.write_text(lines[0] + "\n{oops}\n")
    with pytest.raises(HistoryError, match="line 2: not an observation"):
        list(read_records(path))


def _plain_read(path: Path, values: Callable[[Any], str] = _values) -> list[str]:
    """What reading line by line as text gives: each line's `values` by the plain path, the first
    error, and a torn last line skipped (the reader before block decoding)."""
    with path.open(encoding="utf-8") as handle:
        lines = list(handle)
    out = []
    for number, line in enumerate(lines, start=1):
        try:
            out.append(values(_parse_slow(line, number)))
        except HistoryError as exc:
            if number < len(lines) or line.endswith("\n"):
                out.append(f"HistoryError: {exc}")
            break
    return out


def _read_all(read: Any, path: Path) -> list[str]:
    out = []
    try:
        for record in read(path):
            out.append(_values(record))
    except HistoryError as exc:
        out.append(f"HistoryError: {exc}")
    return out


_good_lines = _observations().map(lambda o: o.to_json() + "\n")
# A carriage return is JSON whitespace inside an object, but it ends a line in text mode.
_cr_lines = _good_lines.map(lambda line: "{\r" + line[1:])


_extras = st.dictionaries(st.sampled_from(["probe", "deadline_s", "warm_expected", "rl_group", "é"]),
                          _json | st.sampled_from(["foreign", "ünï"]), max_size=3)
_extra_lines = st.builds(lambda o, extra, ascii: json.dumps({**json.loads(o.to_json()), "extra": extra},
                                                            ensure_ascii=ascii) + "\n",
                         _observations(), _extras, st.booleans())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(_good_lines | _extra_lines | _hostile_lines() | _cr_lines
                      | st.sampled_from(["\n", " \n", "\r\n", "{}\r"]), max_size=12),
       torn=st.booleans(), block=st.sampled_from([1, 7, 64, 300, 32 * 1024]))
def test_files_read_in_blocks_give_what_reading_line_by_line_gives(
        tmp_path_factory: pytest.TempPathFactory, lines: list[str], torn: bool, block: int) -> None:
    """Blocks of every size (lines across block ends), odd lines among good ones, a torn end;
    the checker's lean records too (probes, never in one, and non-ASCII `extra` included)."""
    text = "".join(lines)
    assume(not _unwritable(text))
    if torn and text.endswith("\n"):
        text = text[:-1]
    path = tmp_path_factory.getbasetemp() / "many.jsonl"
    path.write_text(text, encoding="utf-8")
    with mock.patch.object(store, "BLOCK_BYTES", block):
        assert _read_all(read_records, path) == _plain_read(path)
        assert _read_all(read_history, path) == _plain_read(path)
        assert _read_checked(path) == _plain_read(path, _checked_values)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(_good_lines, min_size=1, max_size=12), torn=st.booleans(),
       block=st.sampled_from([1, 7, 64, 300, 32 * 1024]), compressed=st.booleans(), data=st.data())
def test_records_read_again_by_position_are_the_same(
        tmp_path_factory: pytest.TempPathFactory, lines: list[str], torn: bool, block: int,
        compressed: bool, data: st.DataObject) -> None:
    """`HistoryRecords.reread`: any records read so far, by position, give the same values again."""
    text = "".join(lines)
    assume(not _unwritable(text))
    if torn:
        text += lines[0][:len(lines[0]) // 2]
    folder = tmp_path_factory.mktemp("reread")
    path = folder / HISTORY_FILE
    path.write_text(text, encoding="utf-8")
    if compressed:
        path = compress_history(folder) or path
    with mock.patch.object(store, "BLOCK_BYTES", block):
        records = read_records(path)
        assert records.positional()
        values = [_values(r) for r in records]
        assert not records.positional()  # read from: counting again would not give positions
        positions = data.draw(st.lists(st.integers(1, len(values)), max_size=5))
        again = records.reread(positions)
    assert sorted(again) == sorted(set(positions))
    assert all(_values(record) == values[n - 1] for n, record in again.items())
    with pytest.raises(ValueError, match="not read"):
        records.reread([len(values) + 1])


def test_a_file_changed_since_it_was_read_is_not_read_again(tmp_path: Path) -> None:
    path = tmp_path / HISTORY_FILE
    lines = [Observation(task=f"t{n}", observer="u", channel="get", send_ns=n, recv_ns=n + 1,
                         wall=1.0, http=200, status=7).to_json() + "\n" for n in range(40)]
    path.write_text("".join(lines))
    with mock.patch.object(store, "BLOCK_BYTES", 512):
        records = read_records(path)
        assert [r.task for r in records] == [f"t{n}" for n in range(40)]
        assert [(n, r.task) for n, r in records.scan(3, 5)] == [(3, "t2"), (4, "t3"), (5, "t4")]
        path.write_text("".join(lines[:30]))  # cut short (a different writer, a copy over it)
        with pytest.raises(HistoryError, match="changed since it was read"):
            records.reread([39])
        with pytest.raises(HistoryError, match="changed since it was read"):
            list(records.scan(35, 39))


def test_a_pipe_is_not_read_by_position(tmp_path: Path) -> None:
    path = tmp_path / "fifo"
    os.mkfifo(path)
    assert not read_records(path).positional()


def test_invalid_utf8_fails_as_text_reading_does(tmp_path: Path) -> None:
    good = Observation("t", "o", "get", 1, 2, 0.5).to_json().encode()
    path = tmp_path / "h.jsonl"
    path.write_bytes(good + b"\n" + good.replace(b'"o"', b'"\xff"') + b"\n")
    with pytest.raises(UnicodeDecodeError):
        list(read_records(path))
    path.write_bytes(good + b"\n" + good.replace(b'"o"', b'"\xed\xa0\x80"') + b"\n")  # a surrogate
    with pytest.raises(UnicodeDecodeError):
        list(read_history(path))


# What the lifecycle checker reads of a record (`HistoryRecords.checked`): its fields, and of
# `extra` the probe and a run's two facts.
_CHECKED = ("task", "observer", "channel", "send_ns", "recv_ns", "http", "status", "output", "error",
            "outcome", "conn", "kind", "trail")


def _checked_values(record: Any) -> str:
    extra = record.extra
    # A dict or the lean `extra`; the plain path keeps any other JSON there as it is.
    facts = tuple(extra.get(key) for key in ("probe", "deadline_s", "warm_expected")) \
        if hasattr(extra, "get") else extra
    return repr((*(getattr(record, name) for name in _CHECKED), facts))


def _read_checked(path: Path) -> list[str]:
    out = []
    try:
        for record in read_records(path).checked():
            out.append(_checked_values(record))
    except HistoryError as exc:
        out.append(f"HistoryError: {exc}")
    return out


def test_checked_records_skip_what_the_checker_does_not_read(tmp_path: Path) -> None:
    """A lean record: skipped fields of any JSON type (a number too large for a float) are
    still an observation; a probe, non-ASCII text or a lone surrogate (which msgspec refuses
    even where it skips) give the record of the full read."""
    good = Observation("t", "o", "run", 1, 2, 0.5, updated_at="x", key="k",
                       extra={"rl_group": "get", "deadline_s": 5}).to_json()
    lines = [good, good.replace('"x"', "5").replace('"get"', "1e400"),
             good.replace('"get"', '{"a": [1, "b"]}'), good.replace('"get"', '"é"'),
             good.replace('"rl_group"', '"probe"').replace('"get"', '"foreign"'),
             good.replace('"x"', '"\\ud800"')]
    path = tmp_path / HISTORY_FILE
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with mock.patch.object(store, "BLOCK_BYTES", 1):  # a line a block
        records = read_records(path)
        checked = list(records.checked())
        assert [type(r).__name__ for r in checked] == ["_Checked", "_Checked", "_Checked", "_Line",
                                                       "_Line", "Observation"]
        assert [r.extra.get("deadline_s") for r in checked] == [5] * 6
        # A lean `extra` answers for its keys only, never with one of its methods.
        assert [checked[0].extra.get(name) for name in ("probe", "rl_group", "get")] == [None] * 3
        assert checked[4].extra["probe"] == "foreign"
        # Read again by position: the full records, as iterating gives them.
        assert {n: _values(r) for n, r in records.reread(range(1, 7)).items()} == \
            {n: _values(r) for n, r in enumerate(read_records(path), start=1)}
    with pytest.raises(ValueError, match="alternative"):
        records.checked()


def test_a_lean_records_trail_is_what_a_full_read_gives(tmp_path: Path) -> None:
    """The lean decoder keeps `trail` as raw JSON, decoded when read: of any JSON type there
    (which a full read leaves to the plain path), the plain path's value."""
    good = Observation("t", "o", "get", 1, 2, 0.5, status=3, trail=[1, 2]).to_json()
    trails = ["[1,2]", "null", '"x"', "[1.5]", "[99999999999999999999999]", '{"a":[1]}', '["\\ud800"]']
    lines = [good.replace("[1,2]", trail) for trail in trails] + [good.replace(',"trail":[1,2]', "")]
    path = tmp_path / HISTORY_FILE
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with mock.patch.object(store, "BLOCK_BYTES", 1):  # a line a block
        checked = list(read_records(path).checked())
    # msgspec refuses a lone surrogate even in raw JSON: that line is read in full.
    assert [type(r).__name__ for r in checked] == ["_Checked"] * 6 + ["Observation", "_Checked"]
    assert [r.trail for r in checked] == [r.trail for r in read_history(path)] == \
        [[1, 2], None, "x", [1.5], [99999999999999999999999], {"a": [1]}, ["\ud800"], None]


def test_invalid_utf8_in_a_skipped_field_fails_as_text_reading_does(tmp_path: Path) -> None:
    """The lean decoder does not check the UTF-8 of what it skips: a block that is not ASCII is
    decoded in full, and invalid UTF-8 there still fails."""
    good = Observation("t", "o", "get", 1, 2, 0.5, extra={"rl_group": "get"}).to_json().encode()
    path = tmp_path / "h.jsonl"
    for bad in (b'"\xff"', b'"\xed\xa0\x80"', b'"\xc3"'):
        path.write_bytes(good + b"\n" + good.replace(b'"get"}', bad + b"}") + b"\n")
        with pytest.raises(UnicodeDecodeError):
            list(read_records(path).checked())
