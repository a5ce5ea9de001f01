"""The JSONL history store: append as it happens (flushed), read back as a stream."""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import re
import shutil
import threading
import typing
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

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


def _open_text(path: Path) -> TextIO:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def read_history(path: Path) -> Iterator[Observation]:
    """Yield observations one line at a time; a torn last line (a crash mid-write) is skipped.

    A `.gz` file is read compressed (a finished run folder's history)."""
    try:
        with _open_text(path) as handle:
            previous: str | None = None
            number = 0  # lines read so far: the 1-based number of `previous`
            decode, make, refused = _decode_line, Observation, msgspec.MsgspecError
            for line in handle:
                if previous is not None:
                    # _parse inlined: a function call is a tenth of the time of a line.
                    try:
                        o = decode(previous)
                    except refused:
                        yield _parse_slow(previous, number)
                    else:
                        yield make(o.task, o.observer, o.channel, o.send_ns, o.recv_ns, o.wall,
                                   o.http, o.status, o.output, o.error, o.updated_at, o.outcome,
                                   o.conn, o.seq, o.kind, o.trail, o.key, o.extra)
                number += 1
                previous = line
            if previous is not None:
                if previous.endswith("\n"):
                    yield _parse(previous, number)
                else:
                    try:
                        yield _parse(previous, number)
                    except HistoryError:
                        return
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise HistoryError(f"{path.name}: the compressed history is damaged ({exc})") from exc


def _line_struct() -> type[msgspec.Struct]:
    """Observation's fields, typed as the history writer writes them, for the fast decoder.

    Built from Observation itself, so the two cannot drift. Only lines whose every known field
    has the type written there decode; anything else (a field of another JSON type or an
    unknown channel, a missing field, NaN, lone surrogates, invalid JSON) is refused and goes to
    `_parse_slow`, so every line gives exactly what it gave before. The literals also spare a
    string per field: msgspec returns their own. `wall` is `float | int`, not float: msgspec
    would turn 5 into 5.0, json keeps the int; `task` may be missing (None).
    """
    hints = typing.get_type_hints(Observation)
    fields: list[tuple[str, Any, Any]] = []
    for spec in dataclasses.fields(Observation):
        kind = float | int if spec.name == "wall" else hints[spec.name]
        if spec.default is not dataclasses.MISSING:
            fields.append((spec.name, kind, spec.default))
        elif spec.default_factory is not dataclasses.MISSING:
            fields.append((spec.name, kind, msgspec.field(default_factory=spec.default_factory)))
        elif spec.name in ("task", "recv_ns"):
            fields.append((spec.name, kind, None))
        else:
            fields.append((spec.name, kind))  # type: ignore[arg-type]
    return msgspec.defstruct("_Line", fields, kw_only=True, gc=False)


_Line = _line_struct()


# msgspec straight into a typed struct: three times faster than JSON to a dict, then the fields.
_decode_line: Callable[[str], Any] = msgspec.json.Decoder(_Line).decode


def _parse(line: str, number: int) -> Observation:
    try:
        o = _decode_line(line)
    except (msgspec.MsgspecError, UnicodeEncodeError):  # a lone surrogate cannot become UTF-8 bytes
        return _parse_slow(line, number)
    return Observation(o.task, o.observer, o.channel, o.send_ns, o.recv_ns, o.wall, o.http, o.status,
                       o.output, o.error, o.updated_at, o.outcome, o.conn, o.seq, o.kind, o.trail,
                       o.key, o.extra)


def _parse_slow(line: str, number: int) -> Observation:
    """Any JSON object: the values json.loads gives, Observation.from_dict's checks."""
    try:
        try:
            # pydantic-core's parser (pydantic's own dependency): twice as fast as json.loads,
            # the same values for valid JSON. What it refuses (invalid JSON, or lone surrogates,
            # which json accepts) goes to json: json's result, or json's error message.
            data = _from_json(line)
        except ValueError:
            data = json.loads(line)
        if not isinstance(data, dict):
            raise TypeError("not an object")
        return Observation.from_dict(data)
    except (ValueError, TypeError) as exc:
        raise HistoryError(f"line {number}: not an observation ({exc})") from exc
