"""The JSONL history store: append as it happens (flushed), read back as a stream."""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import gzip
import io
import itertools
import json
import os
import re
import shutil
import threading
import typing
import zlib
from collections.abc import Callable, Generator, Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol, TextIO

import msgspec
from pydantic_core import from_json as _from_json

from harness.history.record import Observation
from harness.progress import meter
from harness.redaction import redact

# The one name of a run's history file (and of each load phase's merged history).
HISTORY_FILE = "observations.jsonl"
# A finished run keeps its history compressed (about a tenth of the size).
COMPRESSED_HISTORY_FILE = HISTORY_FILE + ".gz"


# What worker_history_file names, with the index as group 1.
WORKER_HISTORY = re.compile(r"^observations\.w(\d+)\.jsonl$")


def worker_history_file(index: int) -> str:
    """The history file of one load process before the merge (`observations.w<index>.jsonl`)."""
    return f"observations.w{index}.jsonl"


class HistoryWriter:
    """Appends observations to a JSONL file, one flushed line each (a crash loses nothing seen)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file: TextIO = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()
        self.count = 0

    def append(self, observation: Observation) -> None:
        line = redact(observation.to_json()) + "\n"
        with self._lock:
            self._file.write(line)
            self._file.flush()
            self.count += 1
        recv, send = observation.recv_ns, observation.send_ns
        latency = (recv - send) / 1e6 if recv is not None and send is not None else None
        http = observation.http
        meter().observe(latency, observation.outcome != "ok" or http is None or http >= 500)

    def close(self) -> None:
        with self._lock:
            self._file.close()

    def __enter__(self) -> HistoryWriter:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class HistoryError(ValueError):
    """A history line that is not an observation."""


def history_in(folder: Path) -> Path:
    """A run folder's history: `observations.jsonl` while it is written, `.gz` once finished."""
    plain = folder / HISTORY_FILE
    compressed = folder / COMPRESSED_HISTORY_FILE
    return compressed if compressed.exists() and not plain.exists() else plain


def compress_history(folder: Path) -> Path | None:
    """Replace the folder's `observations.jsonl` by `observations.jsonl.gz`; None if it has none."""
    plain = folder / HISTORY_FILE
    if not plain.is_file():
        return None
    target = folder / COMPRESSED_HISTORY_FILE
    temporary = folder / f".{COMPRESSED_HISTORY_FILE}.tmp"
    with plain.open("rb") as source, gzip.open(temporary, "wb", compresslevel=6) as sink:
        shutil.copyfileobj(source, sink, 1 << 20)
    os.replace(temporary, target)
    plain.unlink()
    return target


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[io.BufferedIOBase]:
    """The file's bytes (a `.gz` inflated); a damaged compressed file is a `HistoryError`."""
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb") as handle:
            yield handle
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise HistoryError(f"{path.name}: the compressed history is damaged ({exc})") from exc


class ExtraFacts(Protocol):
    """What a `CheckedRecord` tells of its `extra`: a key's value (None without it)."""

    def get(self, key: str, /) -> Any: ...


class CheckedRecord(Protocol):
    """What `HistoryRecords.checked` yields: the fields the lifecycle checker reads. An
    `ObservationRecord` is one (it adds the other fields); so is the lean decoder's struct,
    whose `extra` holds only `deadline_s` and `warm_expected` (never a probe: it refuses one)."""

    @property
    def task(self) -> str | None: ...
    @property
    def observer(self) -> str: ...
    @property
    def channel(self) -> str: ...
    @property
    def send_ns(self) -> int: ...
    @property
    def recv_ns(self) -> int | None: ...
    @property
    def http(self) -> int | None: ...
    @property
    def status(self) -> Any: ...
    @property
    def output(self) -> bool | None: ...
    @property
    def error(self) -> bool | None: ...
    @property
    def outcome(self) -> str: ...
    @property
    def conn(self) -> str | None: ...
    @property
    def kind(self) -> str | None: ...
    @property
    def trail(self) -> list[int] | None: ...
    @property
    def extra(self) -> ExtraFacts: ...


class ObservationRecord(CheckedRecord, Protocol):
    """What `read_records` yields: an observation's fields, read-only. An `Observation` is one;
    so is the fast decoder's struct (built from Observation's fields, so the two cannot drift)."""

    @property
    def wall(self) -> float: ...
    @property
    def updated_at(self) -> str | None: ...
    @property
    def seq(self) -> int | None: ...
    @property
    def key(self) -> str | None: ...
    @property
    def extra(self) -> dict[str, Any]: ...


def read_history(path: Path) -> Iterator[Observation]:
    """The file's observations in order, streamed (a block of lines in memory at a time); a torn
    last line (a crash mid-write) is skipped. A `.gz` file is read compressed (a finished run
    folder's history)."""
    return itertools.chain.from_iterable(_blocks(path, True))


def read_records(path: Path) -> HistoryRecords:
    """`read_history` without building an `Observation` per line: the decoded record itself
    (the same values; an `Observation` for a line the fast decoder refuses). For readers that
    only look at the fields, such as the lifecycle checker: building the Observation is a third
    of the time of reading a line. From a regular file, a record read can be read again by its
    position (`HistoryRecords.reread`)."""
    return HistoryRecords(path)


class HistoryRecords(Iterator[ObservationRecord]):
    """The records of a history file in order, streamed (what `read_records` returns).

    From a regular file any record read so far can be read again by its position (1 for the
    first): a reader that keeps records for later, such as the lifecycle checker's witnesses,
    can keep their positions instead. Kept records outlive the block they were decoded in and
    are freed long after, out of the cache, each with its ~10 objects; a position is one int.
    The file is read again only from the blocks that hold the records asked for.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        # Where each block of lines ends: an offset in the (decompressed) file and the number of
        # records read up to there; a block's records are read again from those bytes alone.
        self._ends = [0]
        self._counts = [0]
        self._started = False
        # `for` iterates this chain directly (C speed), not `__next__` (a Python call per record).
        self._records: Iterator[ObservationRecord] = itertools.chain.from_iterable(self._blocks())

    def _blocks(self, lean: bool = False) -> Iterator[list[Any]]:
        self._started = True
        yield from _blocks(self.path, False, self._mark, lean)

    def checked(self) -> Iterator[CheckedRecord]:
        """The records as the lifecycle checker reads them, in place of iterating this (not yet
        started): from an ASCII block, only the fields `CheckedRecord` names are decoded, the
        others checked as JSON and skipped (about a tenth of the time of reading a line); a block
        that does not decode so is read as by iterating. `reread` and `scan` give full records."""
        if self._started:
            raise ValueError("checked() is an alternative to iterating, not after it")
        self._started = True
        return itertools.chain.from_iterable(self._blocks(lean=True))

    def _mark(self, end: int, count: int) -> None:
        self._ends.append(end)
        self._counts.append(count)

    def __iter__(self) -> Iterator[ObservationRecord]:
        return self._records

    def __next__(self) -> ObservationRecord:
        return next(self._records)

    def read_count(self) -> int:
        """How many records were read (whole blocks: those `reread` and `scan` can read again)."""
        return self._counts[-1]

    def positional(self) -> bool:
        """Whether counting records from here gives their positions for `reread`: a regular file
        (not a pipe, which cannot be read twice) not read from yet."""
        return not self._started and self.path.is_file()

    def reread(self, positions: Iterable[int]) -> dict[int, ObservationRecord]:
        """The records at these positions (each already read), read again from the file: the
        same values as the first time."""
        wanted = sorted(set(positions))
        found: dict[int, ObservationRecord] = {}
        if not wanted:
            return found
        self._check_read(wanted[0], wanted[-1])
        with _reading(self.path) as handle:
            for position in wanted:
                if position not in found:  # ascending blocks: the file is read forward only
                    block = bisect.bisect_left(self._counts, position)
                    found.update(self._read_again(handle, block, block))
        return {position: found[position] for position in wanted}

    def scan(self, first: int, last: int) -> Iterator[tuple[int, ObservationRecord]]:
        """The records at positions `first` to `last` (each already read) with their positions,
        read again in order: the blocks that hold them, streamed."""
        self._check_read(first, last)
        if first > last:
            return
        with _reading(self.path) as handle:
            records = self._read_again(handle, bisect.bisect_left(self._counts, first),
                                       bisect.bisect_left(self._counts, last))
            yield from ((n, record) for n, record in records if first <= n <= last)

    def _check_read(self, first: int, last: int) -> None:
        if first < 1 or last > self._counts[-1]:
            raise ValueError(f"positions {first}..{last} were not read (1..{self._counts[-1]})")

    def _read_again(self, handle: io.BufferedIOBase, block: int,
                    final: int) -> Iterator[tuple[int, ObservationRecord]]:
        """The records of blocks `block` to `final` (1-based, as `_ends`), with their positions,
        from the bytes they were read from; other bytes there now are a `HistoryError`."""
        handle.seek(self._ends[block - 1])  # cheap forward in a .gz too
        window = _Window(handle, self._ends[final] - self._ends[block - 1])
        position = self._counts[block - 1]
        for records in _blocks_of(window, False, None):
            for record in records:
                position += 1
                yield position, record
        if window.left or position != self._counts[final]:
            raise HistoryError(f"{self.path.name}: changed since it was read")


class _Window:
    """The next `left` bytes of an open file, for `_blocks_of`."""

    def __init__(self, handle: io.BufferedIOBase, left: int) -> None:
        self.handle = handle
        self.left = left

    def read(self, size: int) -> bytes:
        data = self.handle.read(min(size, self.left)) if self.left > 0 else b""
        self.left -= len(data)
        return data


# Bytes read at a time: the records of a block are alive together, so a block's worth should
# stay in the core's cache (larger blocks read slower).
BLOCK_BYTES = 32 * 1024
_COMMA, _CLOSE = b",", ord("]")


def _blocks(path: Path, observations: bool, mark: Callable[[int, int], None] | None = None,
            lean: bool = False) -> Iterator[list[Any]]:
    """The history in lists of records (Observations if `observations`), a block of lines each.
    `mark`, if given, is told where each block ends (its offset in the file) and how many
    records were read up to there, once they were all taken (for `HistoryRecords.reread`).
    `lean`: `_Checked` structs where a block decodes so (`HistoryRecords.checked`)."""
    with _reading(path) as handle:
        yield from _blocks_of(handle, observations, mark, lean)


def _blocks_of(handle: io.BufferedIOBase | _Window, observations: bool,
               mark: Callable[[int, int], None] | None, lean: bool = False) -> Iterator[list[Any]]:
    """`_blocks` from an open file (or from the bytes of some of its blocks).

    A block of whole lines is decoded in one msgspec call as a JSON array: `[` + the lines
    joined by commas + `]`. Unless it is `[]` (one blank line), that array decodes exactly when
    every line holds one object of the record's types, and then gives what decoding each line
    would; a block that does not, or that has a carriage return (which ends a line in text
    mode), is read line by line as text (`_lines`), the same as the plain reader did."""
    make = _observations
    number = 0  # lines before this block
    offset = 0  # bytes read before this block
    pending: list[bytes] = []  # the start of a line longer than what was read so far
    while data := handle.read(BLOCK_BYTES):
        cut = data.rfind(b"\n")
        if cut < 0:
            pending.append(data)
            continue
        buffer = bytearray(b"[")
        for part in pending:
            buffer += part
        buffer += data
        pending = [data[cut + 1:]] if cut + 1 < len(data) else []
        end = len(buffer) - (len(data) - cut)  # the block's last newline
        offset += end  # the block's bytes: the `[` stands for its last newline
        records: list[Any] | None = None
        if b"\r" not in buffer:
            array = buffer.replace(b"\n", _COMMA)
            array[end] = _CLOSE
            # The lean decoder checks the fields it skips as JSON but not as UTF-8: ASCII only.
            if lean and array.isascii():
                records = _decode_or_none(_decode_checked, memoryview(array)[:end + 1])
            if not records:
                records = _decode_or_none(_decode_block, memoryview(array)[:end + 1])
        if not records:  # refused, or `[]`: a block of one blank line, not an observation
            number = yield from _lines(bytes(memoryview(buffer)[1:end + 1]), number,
                                       observations, last=False)
        else:
            number += len(records)
            yield make(records) if observations else records
        if mark is not None:  # once the block's records were all taken
            mark(offset, number)
    if pending:
        number = yield from _lines(b"".join(pending), number, observations, last=True)
        if mark is not None:
            mark(offset + sum(len(part) for part in pending), number)


def _decode_or_none(decode: Callable[[memoryview], list[Any]], block: memoryview) -> list[Any] | None:
    """The block's records, or None if the decoder refuses it."""
    try:
        return decode(block)
    except msgspec.MsgspecError:
        return None


def _lines(block: bytes, number: int, observations: bool,
           last: bool) -> Generator[list[Any], None, int]:
    """Whole lines one at a time, as text (universal newlines, strict UTF-8) like the plain
    reader; a line that lacks its newline at the end of the file is torn: skipped if it is
    not an observation. Yields what it read before raising on a bad line; returns the number
    of records read so far (the lines, but a torn one)."""
    parse = _parse if observations else _parse_record
    out: list[Any] = []
    for line in io.TextIOWrapper(io.BytesIO(block), encoding="utf-8"):
        number += 1
        try:
            out.append(parse(line, number))
        except HistoryError:
            if out:
                yield out
            if last and not line.endswith("\n"):
                return number - 1  # only the last line of the file can lack its newline: no record
            raise
    if out:
        yield out
    return number


def _line_fields() -> list[tuple[str, Any] | tuple[str, Any, Any]]:
    """Observation's fields, typed as the history writer writes them, for the fast decoder.

    Built from Observation itself, so the two cannot drift. Only lines whose every known field
    has the type written there decode; anything else (a field of another JSON type or an
    unknown channel, a missing field, NaN, lone surrogates, invalid JSON) is refused and goes to
    `_parse_slow`, so every line gives exactly what it gave before. The literals also spare a
    string per field: msgspec returns their own. `wall` is `float | int`, not float: msgspec
    would turn 5 into 5.0, json keeps the int; `task` may be missing (None).
    """
    hints = typing.get_type_hints(Observation)
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    for spec in dataclasses.fields(Observation):
        kind = float | int if spec.name == "wall" else hints[spec.name]
        if spec.default is not dataclasses.MISSING:
            fields.append((spec.name, kind, spec.default))
        elif spec.default_factory is not dataclasses.MISSING:
            fields.append((spec.name, kind, msgspec.field(default_factory=spec.default_factory)))
        elif spec.name in ("task", "recv_ns"):
            fields.append((spec.name, kind, None))
        else:
            fields.append((spec.name, kind))
    return fields


_Line = msgspec.defstruct("_Line", _line_fields(), kw_only=True, gc=False)


class _CheckedExtra(msgspec.Struct, kw_only=True, gc=False):
    """The `extra` of a `_Checked` record: the two keys the checker reads of a run; the others
    are skipped. A probe other than null is refused (the block is then read in full), so a
    record of the lean decoder never is another key's probe."""

    deadline_s: Any = None
    warm_expected: Any = None
    probe: None = None

    def get(self, key: str, /) -> Any:
        # Its fields only: `getattr` alone would answer `get("get")` with this method.
        return getattr(self, key) if key in self.__struct_fields__ else None


def _trail(record: Any) -> Any:
    """A lean record's `trail`, decoded when read (the checker reads few): the value a full
    read gives, whatever JSON the line holds there."""
    raw = record.trail_json
    try:
        return _decode_trail(raw)
    except msgspec.MsgspecError:
        return _json_value(bytes(raw))


def _checked_struct() -> type[msgspec.Struct]:
    """`_Line` with only the fields `CheckedRecord` names (`extra` as `_CheckedExtra`): the
    others are skipped, but `wall`, which a line must have, read as raw JSON. `trail` is kept
    as raw JSON too, decoded only when read: a list on most lines, and the only object of a
    record the garbage collector tracks. A line decodes as a `_Checked` whenever it decodes
    as a `_Line` (but with a probe); the ones that decode only as a `_Checked` (a skipped or
    raw field of another JSON type, or a number too large there) are observations all the
    same, read by `_parse_slow` with these fields' values. msgspec checks what it skips as
    JSON (lone surrogates included), not as UTF-8 (`_blocks_of`)."""
    names = {name for name in vars(CheckedRecord) if not name.startswith("_")}
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    for spec in _line_fields():
        if spec[0] == "extra":
            fields.append(("extra", _CheckedExtra, msgspec.field(default_factory=_CheckedExtra)))
        elif spec[0] == "trail":
            fields.append(("trail_json", msgspec.Raw, msgspec.field(name="trail", default=_NULL)))
        elif spec[0] in names:
            fields.append(spec)
        elif len(spec) == 2:  # required: a line without it is not an observation
            fields.append((spec[0], msgspec.Raw))
    return msgspec.defstruct("_Checked", fields, kw_only=True, gc=False,
                             namespace={"trail": property(_trail)})


_NULL = msgspec.Raw(b"null")
_decode_trail: Callable[[msgspec.Raw], Any] = msgspec.json.Decoder(list[int] | None).decode


_Checked = _checked_struct()


def _observations_maker() -> Callable[[list[Any]], list[Observation]]:
    """Decoded structs -> Observations, each built with its fields by position in Observation's
    order (a comprehension of `Observation(o.task, o.observer, ...)`: keywords or an attrgetter
    cost half as much again). Generated from Observation's fields, as dataclasses generate
    `__init__`, so a field added there is read without a change here."""
    values = ", ".join(f"o.{spec.name}" for spec in dataclasses.fields(Observation))
    # eval of code made from our own field names only (no outside text).
    maker: Callable[[list[Any]], list[Observation]] = eval(
        f"lambda records: [Observation({values}) for o in records]", {"Observation": Observation})
    return maker


_observations = _observations_maker()


# msgspec straight into a typed struct: three times faster than JSON to a dict, then the fields.
_decode_line: Callable[[str], Any] = msgspec.json.Decoder(_Line).decode
# A block of lines as one JSON array of them (`_blocks`): a tenth faster than line by line.
_decode_block: Callable[[memoryview], list[Any]] = msgspec.json.Decoder(list[_Line]).decode  # type: ignore[valid-type]
# The same, for `HistoryRecords.checked`.
_decode_checked: Callable[[memoryview], list[Any]] = msgspec.json.Decoder(list[_Checked]).decode  # type: ignore[valid-type]


def _parse(line: str, number: int) -> Observation:
    try:
        o = _decode_line(line)
    except (msgspec.MsgspecError, UnicodeEncodeError):  # a lone surrogate cannot become UTF-8 bytes
        return _parse_slow(line, number)
    return _observations([o])[0]


def _parse_record(line: str, number: int) -> ObservationRecord:
    """`_parse` without the Observation (see `read_records`)."""
    try:
        record: ObservationRecord = _decode_line(line)
    except (msgspec.MsgspecError, UnicodeEncodeError):
        return _parse_slow(line, number)
    return record


def _parse_slow(line: str, number: int) -> Observation:
    """Any JSON object: the values json.loads gives, Observation.from_dict's checks."""
    try:
        data = _json_value(line)
        if not isinstance(data, dict):
            raise TypeError("not an object")
        return Observation.from_dict(data)
    except (ValueError, TypeError) as exc:
        raise HistoryError(f"line {number}: not an observation ({exc})") from exc


def _json_value(text: str | bytes) -> Any:
    """What json.loads gives, faster: pydantic-core's parser (pydantic's own dependency) is
    twice as fast, with the same values for valid JSON. What it refuses (invalid JSON, or lone
    surrogates, which json accepts) goes to json: json's result, or json's error message."""
    try:
        return _from_json(text)
    except ValueError:
        return json.loads(text)
