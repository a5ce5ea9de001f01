"""Merge the per-process histories of a phase into one `observations.jsonl`.

Each `observations.w<index>.jsonl` holds one process's observations in the order they were
made; every observer (a Locust user) lives in one process, so a k-way merge that keeps each
file's order keeps every observer's order, which is all the invariant checker's per-observer
rules need. The merge key is the receive time on the wall clock (`wall` + the monotonic
duration), good across machines. A process from another machine has its monotonic stamps
moved onto the master's clock (`shifts`: nanoseconds to add), so real-time comparisons stay
meaningful to within the machines' clock agreement.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterator
from pathlib import Path

from harness.history.store import HISTORY_FILE, WORKER_HISTORY


def _keyed(path: Path, shift: int) -> Iterator[tuple[float, str]]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a torn line from a crashed process
            if not isinstance(record, dict):
                continue
            send = record.get("send_ns") or 0
            recv = record.get("recv_ns")
            key = float(record.get("wall") or 0.0) + ((recv - send) / 1e9 if recv else 0.0)
            if shift:
                record["send_ns"] = send + shift
                if recv is not None:
                    record["recv_ns"] = recv + shift
                line = json.dumps(record, separators=(",", ":")) + "\n"
            elif not line.endswith("\n"):
                line += "\n"
            yield key, line


def worker_files(phase_dir: Path) -> list[tuple[int, Path]]:
    found = []
    for path in phase_dir.iterdir():
        match = WORKER_HISTORY.match(path.name)
        if match:
            found.append((int(match[1]), path))
    return sorted(found)


def merge_histories(phase_dir: Path, shifts: dict[int, int] | None = None) -> int:
    """Write `observations.jsonl` from the worker files, then remove them (each observation is
    stored once); return the number of observations."""
    shifts = shifts or {}
    files = worker_files(phase_dir)
    streams = [_keyed(path, shifts.get(index, 0)) for index, path in files]
    count = 0
    target = phase_dir / HISTORY_FILE
    with target.open("w", encoding="utf-8") as out:
        for _, line in heapq.merge(*streams, key=lambda item: item[0]):
            out.write(line)
            count += 1
    for _, path in files:
        path.unlink(missing_ok=True)
    return count
