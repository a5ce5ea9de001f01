"""Shared plumbing: CPU pinning, /proc readings, child processes, statistics, result files."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from harness.net.reference import read_announced_url, stop_process

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = PROJECT_ROOT / "reports" / "bench"
LOOPBACK = "127.0.0.1"
SCHEMA_VERSION = 1

# The uvicorn settings of harness/server/serve.py, repeated for the baseline app (serve.py
# builds its Config inline). If serve.py changes them, change them here too.
UVICORN_SETTINGS: dict[str, Any] = {"log_level": "warning", "access_log": False, "lifespan": "on",
                                    "timeout_graceful_shutdown": 2}


class BenchmarkError(RuntimeError):
    """A benchmark could not produce a valid measurement."""


# -- statistics ---------------------------------------------------------------------------

def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) by linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float | None:
    return percentile(values, 50.0)


class AbRows:
    """The rows of an A/B benchmark (A and B alternating per round), labelled by `side`."""

    def __init__(self, rows: Sequence[dict[str, Any]], side: str) -> None:
        self.rows = rows
        self.side = side

    def median(self, label: str, field: str) -> float | None:
        """Median of one side's `field`, rounded to 2 places."""
        value = median([float(r[field]) for r in self.rows
                        if r[self.side] == label and r.get(field) is not None])
        return None if value is None else round(value, 2)

    def paired(self, numerator: str, denominator: str, rounds: int) -> list[float]:
        """Per round: numerator rps / denominator rps (the machine drifts between rounds)."""
        ratios = []
        for round_index in range(1, rounds + 1):
            pair = {r[self.side]: r["rps"] for r in self.rows if r["round"] == round_index}
            if pair.get(denominator) and pair.get(numerator) is not None:
                ratios.append(round(pair[numerator] / pair[denominator], 3))
        return ratios


def ratio_of(numerator: float | None, denominator: float | None) -> float | None:
    return round(numerator / denominator, 3) if denominator and numerator is not None else None


def result_head(name: str, title: str, started: float, problems: list[str], ratio: float | None,
                threshold: float) -> dict[str, Any]:
    """The fields every ratio benchmark's result starts with; valid means no problems and a ratio."""
    valid = not problems and ratio is not None
    return {
        "benchmark": name,
        "title": title,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "valid": valid,
        "problems": problems,
        "goal": {"metric": "ratio", "threshold": threshold, "comparison": ">=",
                 "met": bool(valid and ratio is not None and ratio >= threshold)},
        "ratio": ratio,
    }


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 3)


# -- CPUs and processes -------------------------------------------------------------------

@dataclass(frozen=True)
class CpuLayout:
    """Which CPUs the server and the client get (None: no pinning)."""

    server: frozenset[int] | None
    client: frozenset[int] | None

    @property
    def pinned(self) -> bool:
        return self.server is not None

    def describe(self) -> str:
        if self.server is None or self.client is None:
            return "not pinned (fewer than 2 usable CPUs or no sched_setaffinity)"
        return (f"server on CPU {','.join(map(str, sorted(self.server)))}, "
                f"client on CPU {','.join(map(str, sorted(self.client)))}")


def cpu_layout() -> CpuLayout:
    """One CPU for the server, the rest for the client, when there are at least two."""
    if not hasattr(os, "sched_getaffinity"):
        return CpuLayout(None, None)
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return CpuLayout(None, None)
    return CpuLayout(frozenset(cpus[:1]), frozenset(cpus[1:]))


def pin(pid: int, cpus: frozenset[int] | None) -> None:
    """Set the affinity of every thread of `pid` (threads made later inherit it)."""
    if cpus is None or not hasattr(os, "sched_setaffinity"):
        return
    task_dir = Path(f"/proc/{pid}/task")
    tids = [int(p.name) for p in task_dir.iterdir()] if task_dir.is_dir() else [pid]
    for tid in tids:
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(tid, cpus)


@contextlib.contextmanager
def pinned_self(cpus: frozenset[int] | None) -> Iterator[None]:
    """Pin the calling thread for the block, then restore its affinity."""
    if cpus is None or not hasattr(os, "sched_setaffinity"):
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def taskset_prefix(cpus: frozenset[int] | None) -> list[str]:
    """`taskset -c CPUS` when taskset exists (pins a child from its first instruction)."""
    if cpus is None:
        return []
    path = shutil.which("taskset")
    return [path, "-c", ",".join(map(str, sorted(cpus)))] if path else []


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process, from /proc (None where /proc is absent)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw.rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return ticks / os.sysconf("SC_CLK_TCK")


def core_ticks(cpus: frozenset[int] | None) -> tuple[int, int] | None:
    """(busy, total) clock ticks of the given CPUs since boot, from /proc/stat."""
    if cpus is None:
        return None
    busy = total = 0
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split()
        if not parts or not parts[0].startswith("cpu") or not parts[0][3:].isdigit():
            continue
        if int(parts[0][3:]) not in cpus:
            continue
        values = [int(v) for v in parts[1:9]]  # user nice system idle iowait irq softirq steal
        total += sum(values)
        busy += sum(values) - values[3] - values[4]
    return (busy, total) if total else None


def busy_share(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """Fraction of the interval the CPUs were busy (any process)."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])


def rss_bytes(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


@contextlib.contextmanager
def announced_server(cmd: Sequence[str], env: dict[str, str] | None = None,
                     timeout: float = 20.0) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Run a server that prints `listening on URL`; yield the process and the URL."""
    process = subprocess.Popen(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, cwd=PROJECT_ROOT, env=env)
    output: list[str] = []
    try:
        url = read_announced_url(process, output, timeout)
        if url is None:
            raise BenchmarkError(f"{cmd[-1]} did not start: " + " | ".join(output[-5:]))
        yield process, url
    finally:
        stop_process(process)


def raise_nofile(wanted: int) -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE towards `wanted` (children inherit it); return the limits."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


# -- environment and result files ---------------------------------------------------------

def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def environment() -> dict[str, Any]:
    """What the figures depend on: CPUs, Python, server stack."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "usable_cpus": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "loadavg_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "uvicorn": _version("uvicorn"),
        "starlette": _version("starlette"),
        "h11": _version("h11"),
        "uvicorn_http": "httptools" if importlib.util.find_spec("httptools") else "h11",
        "uvicorn_loop": "uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
    }


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def command_line() -> str:
    return " ".join(["python -m benchmarks", *sys.argv[1:]])


def write_result(out_dir: Path, name: str, result: dict[str, Any]) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)
    return path


def read_results(out_dir: Path, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for name in names:
        path = out_dir / f"{name}.json"
        if path.is_file():
            with contextlib.suppress(ValueError, OSError):
                found[name] = json.loads(path.read_text())
    return found
