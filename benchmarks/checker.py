"""Lifecycle invariant checker throughput and memory on generated histories.

Method:
- Histories are generated (seeded, in this process) and written as JSONL by
  `Observation.to_json`, the format `HistoryWriter` appends, in receive order. A history is
  a load test's: tasks start at a Poisson rate chosen so that about `open` tasks are open at
  once (mean task duration 30 s), walking the lifecycle of contracts/lifecycle.yaml (cold,
  serving and warm setups, failures, cancels, a few rejections); 1-3 virtual users (from a
  pool of 512) poll each task by GET (with the event trail) or GET status every 1-3 s until
  they have seen it end; 30 % of the tasks also have an NDJSON or SSE stream (snapshot,
  updates, a heartbeat every 5 s of silence and a field-less update every 20 s of it, as
  the reference server sends, the server's close); 12 % are cancelled.
  A generated history must check with zero findings, else the run is invalid; but for the
  `LC-SDK-UNKNOWN-TERMINAL` warnings its rejected tasks earn (the JS SDK does not know 13).
- Every measurement runs in a fresh child process pinned to one CPU:
  `memory` reads the file into a list of Observations first (not timed; the parse time is
  reported separately), then times `check_history` over the list (pure checker speed);
  `stream` times `check_history(read_records(path))` end to end (parse + check), which is
  how `harness check-history` runs (the decoded records, no Observation built per line), and
  also times reading alone (the history parsed and dropped), so the checker's own share of
  the streaming time shows.
  Each child repeats its timing (more for small histories), and every child runs once per
  round, the rounds going over all histories in turn (like ABAB); rates are
  observations per CPU second of the child's thread (wall-clock rates are in the JSON too),
  so time that other processes take on the CPU does not count. The goal is judged on the
  best run of each child, since other tenants of a shared machine can only slow a run down
  (caches, memory bandwidth); the median run is reported next to it. Peak RSS is the
  child's VmHWM (the high-water mark of its own image; `getrusage` maxrss would also count
  the parent's RSS at fork), next to that of an idle child (same imports, lifecycle loaded).
- Instructions (deterministic: other tenants move CPU seconds by +-30 % here, not these):
  the largest ~1k-open history's first 50k and 150k lines, each read and checked once under
  valgrind's cachegrind, and the same for the plain reader the project started with
  (json.loads + Observation.from_dict a line, no check) as the same-run baseline; the
  difference of the two passes over 100k is the cost per observation. Skipped without valgrind.
- Linearity: the same history shape at 10k, 100k and 1M observations; the rate should not
  fall as the size grows, judged on the largest size against the next one down, >= 0.8 (the
  10k history is still ramping up, with fewer tasks open, so it runs faster).
  The `memory` child also times one pass in ten slices: the same rate from the first slice
  to the last means time linear in the number of observations.
- Memory: the checker keeps state per task until the task ended `horizon_s` of history time
  before the newest observation. It therefore holds the tasks open now plus those that ended
  within the horizon, whatever the length of the history. To show that in 1M observations
  the benchmark uses a 30 s horizon (the default is 300 s) and compares two 1M histories,
  one with ~1k and one with ~10k tasks open at once; `tasks held` is the checker's own peak
  count of task states (taken before each eviction, every 20,000 observations, and at the end).
"""

from __future__ import annotations

import argparse
import bisect
import gc
import heapq
import itertools
import json
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.common import PROJECT_ROOT, BenchmarkError, busy_share, core_ticks, median
from harness.contract import Lifecycle, load_lifecycle
from harness.history import Observation, ObservationRecord

NAME = "checker"
GOAL_RATE = 500_000.0
# Linear growth: the 1M rate is at least this share of the best smaller size's rate.
GOAL_LINEARITY = 0.8
# What a correct history still earns: every Rejected (13) task is a warning that
# `@inferencesh/sdk` does not know its status (its clients would wait forever).
EXPECTED_CHECKS = frozenset({"LC-SDK-UNKNOWN-TERMINAL"})
SEC = 1_000_000_000
MS = 1_000_000
BASE_NS = 5_000 * SEC  # monotonic clock at the start of the history
BASE_WALL = 1_795_000_000.0


@dataclass
class Options:
    sizes: list[int] = field(default_factory=lambda: [10_000, 100_000, 1_000_000])
    open_tasks: int = 1_000  # tasks open at once in the linearity histories
    open_tasks_large: int = 10_000  # the second 1M history, for memory
    horizon_s: float = 30.0
    repeat: int = 3  # timed runs per child (more for small histories)
    rounds: int = 3  # every child is run once per round, the rounds spread over the benchmark
    seed: int = 20261127
    cpu: int | None = None  # None: the last usable CPU
    instructions: bool = True  # count instructions under cachegrind too (when valgrind is there)

    @classmethod
    def quick(cls) -> Options:
        return cls(sizes=[10_000, 100_000], open_tasks_large=5_000, repeat=2, rounds=1,
                    instructions=False)


# -- history generation -------------------------------------------------------------------

@dataclass(frozen=True)
class Shape:
    observations: int
    open_tasks: int
    seed: int
    mean_task_s: float = 30.0
    poll_s: tuple[float, float] = (1.0, 3.0)
    users: int = 512
    stream_share: float = 0.3
    heartbeat_s: float = 5.0
    # The reference server's cadence: a quiet live stream sends a field-less update this often
    # (the contract's bound, LC-PROGRESS-GAP); the ticks between are heartbeats.
    progress_s: float = 20.0
    deadline_s: float = 600.0


# (weight, path, warm_expected). Checked against the lifecycle's transitions at start.
PATHS: list[tuple[float, list[int], bool]] = [
    (0.22, [1, 2, 3, 4, 5, 6, 7, 9, 10], False),  # cold worker, output files
    (0.18, [1, 2, 3, 6, 7, 10], False),  # worker serving the app, new setup
    (0.20, [1, 2, 3, 7, 9, 10], True),  # warm for app and setup: no setup phases
    (0.10, [1, 2, 3, 4, 5, 6, 7, 11], False),  # the app failed
    (0.04, [1, 2, 11], False),  # failed before dispatch
    (0.12, [1, 2, 3, 7, 8, 12], False),  # cancelled while running
    (0.10, [1, 2, 3, 6, 7, 9, 10], False),
    (0.04, [13], False),  # rejected at admission
]
# The share of each phase in a task's duration, by status.
PHASE_WEIGHT = {1: 0.02, 2: 0.15, 3: 0.03, 4: 0.05, 5: 0.05, 6: 0.1, 7: 0.5, 8: 0.05, 9: 0.05}


def _check_paths(lc: Lifecycle) -> None:
    for _, path, _ in PATHS:
        if path[0] not in lc.initial or not lc.is_terminal(path[-1]):
            raise BenchmarkError(f"generator path {path} does not start initial and end terminal")
        for a, b in itertools.pairwise(path):
            if b not in lc.transitions.get(a, []):
                raise BenchmarkError(f"generator path {path}: {a} -> {b} is not a transition")


def _iso(ns: int) -> str:
    wall = BASE_WALL + (ns - BASE_NS) / SEC
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(wall)) + f".{int(wall % 1 * 1e6):06d}Z"


class _Gen:
    def __init__(self, lc: Lifecycle, shape: Shape) -> None:
        self.lc = lc
        self.shape = shape
        self.rng = random.Random(shape.seed)
        self.weights = [w for w, _, _ in PATHS]
        self.conns = 0
        self.token = f"{shape.seed % 0xFFFFFF:06x}"

    def task(self, index: int, start: int) -> tuple[list[tuple[int, Observation]], int]:
        """The observations of one task (unsorted, with receive times) and its end time."""
        rng, lc, shape = self.rng, self.lc, self.shape
        _, path, warm = PATHS[rng.choices(range(len(PATHS)), self.weights)[0]]
        task_id = f"{index:08x}{rng.getrandbits(64):016x}"
        key = f"k{index % 8}"
        duration = shape.mean_task_s * rng.uniform(0.3, 1.7) * SEC
        total_weight = sum(PHASE_WEIGHT[s] for s in path[:-1]) or 1.0
        times = [start + 2 * MS]
        for status in path[:-1]:
            times.append(times[-1] + int(duration * PHASE_WEIGHT[status] / total_weight) + MS)
        end = times[-1]
        stamps = [_iso(t) for t in times]
        out: list[tuple[int, Observation]] = []

        def digest(k: int, with_trail: bool) -> dict[str, Any]:
            status = path[k]
            return {"status": status, "output": status == lc.completed,
                    "error": status in (lc.failed, lc.rejected), "updated_at": stamps[k],
                    "trail": path[:k + 1] if with_trail else None}

        def at(t: int) -> int:
            return bisect.bisect_right(times, t) - 1

        def wall(t: int) -> float:
            return round(BASE_WALL + (t - BASE_NS) / SEC, 6)

        run_recv = start + rng.randint(3, 9) * MS
        out.append((run_recv, Observation(
            task_id, f"u{index % shape.users}", "run", start, run_recv, wall(start), http=200,
            key=key, **digest(0, True),
            extra={"deadline_s": shape.deadline_s, "app": "infsh/sleep", "warm_expected": warm,
                   "rl_remaining": rng.randint(0, 999), "rl_group": "run"})))
        if lc.cancelling in path:
            first = path.index(lc.cancelling)
            send = times[first] - rng.randint(1, 50) * MS
            recv = times[first] + MS
            out.append((recv, Observation(task_id, f"c{index % 64}", "cancel", send, recv, wall(send),
                                          http=200, key=key, **digest(first, True),
                                          extra={"rl_remaining": 500, "rl_group": "get"})))
        if len(path) > 1:
            poll_lo, poll_hi = shape.poll_s
            users = rng.choices((1, 2, 3), (0.4, 0.4, 0.2))[0]
            for u in range(users):
                user = f"u{(index + 1 + u * 97) % shape.users}"
                clock = run_recv + int(rng.uniform(0, poll_hi) * SEC)
                after_end = 0
                while True:
                    send = clock
                    recv = send + rng.randint(2, 30) * MS
                    k = at(rng.randint(send, recv))
                    channel = "get" if rng.random() < 0.6 else "status"
                    if channel == "get":
                        fields = digest(k, True)
                    else:
                        fields = {"status": path[k]}
                    out.append((recv, Observation(
                        task_id, user, channel, send, recv, wall(send), http=200, key=key, **fields,
                        extra={"rl_remaining": rng.randint(0, 999), "rl_group": "get"})))
                    if k == len(path) - 1:
                        after_end += 1
                        if after_end > 1 or rng.random() < 0.7:
                            break
                    clock = recv + int(rng.uniform(poll_lo, poll_hi) * SEC)
            if rng.random() < shape.stream_share:
                out += self.stream(task_id, key, path, times, digest, wall, run_recv)
        return out, end

    def stream(self, task_id: str, key: str, path: list[int], times: list[int], digest: Any,
               wall: Any, run_recv: int) -> list[tuple[int, Observation]]:
        rng, shape = self.rng, self.shape
        self.conns += 1
        fmt = "ndjson" if self.conns % 2 else "sse"
        user = f"s{self.conns % shape.users}"
        conn = f"{user}/{fmt}{self.conns}-{self.token}"
        send = run_recv + rng.randint(5, 500) * MS
        opened = send + rng.randint(2, 10) * MS
        out: list[tuple[int, Observation]] = []
        seq = 0

        def event(recv: int, kind: str, k: int | None) -> None:
            nonlocal seq
            fields = digest(k, True) if k is not None else {}
            out.append((recv, Observation(task_id, user, fmt, send, recv, wall(send), http=200,  # type: ignore[arg-type]
                                          conn=conn, seq=seq, kind=kind, key=key,  # type: ignore[arg-type]
                                          **fields)))
            seq += 1

        k = bisect.bisect_right(times, opened) - 1
        event(opened, "update", k)
        last = opened
        heartbeat = int(shape.heartbeat_s * SEC)
        progress = int(shape.progress_s * SEC)
        for nxt in range(k + 1, len(path)):
            change = times[nxt] + MS
            last_update = last
            while last + heartbeat < change:
                last += heartbeat
                if last - last_update >= progress:
                    event(last, "update", None)  # no status: what the server sends, no change
                    last_update = last
                else:
                    event(last, "heartbeat", None)
            event(change, "update", nxt)
            last = change
        event(last + 2 * MS, "close", None)
        return out


@dataclass
class Generated:
    path: Path
    observations: int
    tasks: int
    open_peak: int
    open_mean: float
    span_s: float
    bytes: int
    seconds: float


def generate(lc: Lifecycle, shape: Shape, path: Path) -> Generated:
    """Write a history of exactly `shape.observations` lines in receive order, streaming."""
    _check_paths(lc)
    started = time.perf_counter()
    gen = _Gen(lc, shape)
    rng = random.Random(shape.seed ^ 0x5EED)
    rate = shape.open_tasks / shape.mean_task_s  # tasks per second
    pending: list[tuple[int, int, Observation]] = []
    ends: list[int] = []
    written = tasks = open_peak = 0
    open_sum = 0
    order = 0
    clock = BASE_NS
    first = last = 0
    with path.open("w", encoding="utf-8") as handle:
        while written < shape.observations:
            clock += int(rng.expovariate(rate) * SEC)
            # Everything received before this task starts can be written: later tasks start later.
            while pending and pending[0][0] < clock and written < shape.observations:
                recv, _, obs = heapq.heappop(pending)
                handle.write(obs.to_json() + "\n")
                written += 1
                first = first or recv
                last = recv
            if written >= shape.observations:
                break
            observations, end = gen.task(tasks, clock)
            tasks += 1
            for recv, obs in observations:
                order += 1
                heapq.heappush(pending, (recv, order, obs))
            while ends and ends[0] <= clock:
                heapq.heappop(ends)
            heapq.heappush(ends, end)
            open_peak = max(open_peak, len(ends))
            open_sum += len(ends)
    return Generated(path, written, tasks, open_peak, round(open_sum / max(tasks, 1), 1),
                     round((last - first) / SEC, 1), path.stat().st_size,
                     round(time.perf_counter() - started, 2))


# -- the child: one measurement in a fresh process -----------------------------------------

def _rss_mb() -> float:
    """Peak RSS of this process image, MB: VmHWM. (getrusage's ru_maxrss also counts the
    parent's RSS at fork, before the exec: a floor of the parent's size, not ours.)"""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return _maxrss_mb()


def _maxrss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def child(argv: list[str]) -> int:
    started = time.monotonic()
    parser = argparse.ArgumentParser(prog="python -m benchmarks.checker")
    parser.add_argument("mode", choices=["idle", "memory", "stream", "once", "plain"])
    parser.add_argument("file", type=Path)
    parser.add_argument("--horizon", type=float, required=True)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    from harness.checks.lifecycle import Checker, InvariantOptions
    from harness.history import read_history, read_records

    lc = load_lifecycle()
    options = InvariantOptions(horizon_s=args.horizon)
    result: dict[str, Any] = {"mode": args.mode, "rss_after_imports_mb": _rss_mb()}
    if args.mode == "idle":
        print(json.dumps(result))
        return 0
    if args.mode in ("once", "plain"):  # one pass, for counting instructions (`_instructions`)
        if args.mode == "plain":
            with args.file.open(encoding="utf-8") as handle:
                for line in handle:
                    Observation.from_dict(json.loads(line))
        else:
            Checker(lc, options).add_all(read_records(args.file))
        return 0

    def check(observations: Iterable[ObservationRecord]) -> tuple[float, float, Checker]:
        checker = Checker(lc, options)
        start, cpu = time.perf_counter(), time.thread_time()
        if hasattr(checker, "add_all"):
            checker.add_all(observations)  # what check_history does
        else:  # an older checker, for comparisons
            for obs in observations:
                checker.add(obs)
        checker.finish()
        return time.perf_counter() - start, time.thread_time() - cpu, checker

    def parse_only() -> float:
        cpu = time.thread_time()
        for _ in read_records(args.file):
            pass
        return time.thread_time() - cpu

    history: list[Observation] | None = None
    if args.mode == "memory":
        start = time.perf_counter()
        history = list(read_history(args.file))
        result["parse_s"] = round(time.perf_counter() - start, 4)
        result["rss_after_load_mb"] = _rss_mb()
        gc.collect()
    times: list[float] = []
    cpu_times: list[float] = []
    parse_times: list[float] = []
    checker: Checker | None = None
    for _ in range(args.repeat):
        if history is None:
            parse_times.append(parse_only())
        elapsed, cpu, checker = check(history if history is not None else read_records(args.file))
        times.append(elapsed)
        cpu_times.append(cpu)
    assert checker is not None
    report = checker.report
    unexpected = [f for f in report.findings if f.check not in EXPECTED_CHECKS]
    # (None, None) for a checker without the method (for comparisons with older versions).
    held = checker.peak_held() if hasattr(checker, "peak_held") else (None, None)
    result.update({
        "observations": report.metrics["observations"],
        "seconds": times,
        "cpu_seconds": cpu_times,
        "findings": len(unexpected),
        "finding_checks": sorted({f.check for f in unexpected}),
        "expected_findings": len(report.findings) - len(unexpected),
        "metrics": {k: report.metrics.get(k) for k in ("tasks", "terminal", "lost", "unresolved")},
        "peak_tasks_held": held[0],
        "peak_conns_held": held[1],
        "rss_peak_mb": _rss_mb(),
        "maxrss_mb": _maxrss_mb(),
    })
    if parse_times:
        result["parse_only_cpu_seconds"] = parse_times
    if history is not None:
        # One more pass in ten slices: a rate that holds from the first slice to the last is
        # time linear in the number of observations (the headline figures are the full passes).
        checker = Checker(lc, options)
        step = max(1, len(history) // 10)
        rates = []
        for i in range(0, len(history), step):
            part = history[i:i + step]
            cpu = time.thread_time()
            if hasattr(checker, "add_all"):
                checker.add_all(part)
            else:
                for obs in part:
                    checker.add(obs)
            rates.append(round(len(part) / (time.thread_time() - cpu)))
        checker.finish()
        result["slice_rates"] = rates
    result["cpu_s"] = round(_cpu_s(), 3)
    result["wall_s"] = round(time.monotonic() - started, 3)
    print(json.dumps(result))
    return 0


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _run_child(mode: str, file: Path, horizon: float, repeat: int, cpu: int | None) -> dict[str, Any]:
    prefix = ["taskset", "-c", str(cpu)] if cpu is not None and _has_taskset() else []
    cmd = [*prefix, sys.executable, "-m", "benchmarks.checker", mode, str(file),
           "--horizon", str(horizon), "--repeat", str(repeat)]
    cpus = frozenset({cpu}) if cpu is not None else None
    before = core_ticks(cpus)
    done = subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=1800)
    busy = busy_share(before, core_ticks(cpus))
    if done.returncode != 0:
        raise BenchmarkError(f"checker child ({mode} {file.name}) failed: {done.stderr.strip()[-800:]}")
    data: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if busy is not None and prefix and data.get("wall_s"):
        # What else ran on the child's CPU meanwhile (other processes, steal): noise in the rates.
        data["others_on_core"] = round(max(0.0, busy - data["cpu_s"] / data["wall_s"]), 3)
    return data


def _has_taskset() -> bool:
    return shutil.which("taskset") is not None


# -- the parent ----------------------------------------------------------------------------

def _label(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


def run(options: Options) -> dict[str, Any]:
    lc = load_lifecycle()
    started = time.time()
    cpu = options.cpu
    if cpu is None and hasattr(os, "sched_getaffinity"):
        cpu = sorted(os.sched_getaffinity(0))[-1]
    plans: list[tuple[str, Shape, bool]] = [
        (f"{_label(n)} obs, ~{_label(options.open_tasks)} open",
         Shape(n, options.open_tasks, options.seed + i), True) for i, n in enumerate(options.sizes)]
    largest = max(options.sizes)
    plans.append((f"{_label(largest)} obs, ~{_label(options.open_tasks_large)} open",
                  Shape(largest, options.open_tasks_large, options.seed + 99), False))
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-checker-") as tmp:
        idle_file = Path(tmp) / "empty.jsonl"
        idle_file.write_text("")
        idle = _run_child("idle", idle_file, options.horizon_s, 1, cpu)
        files: list[Path] = []
        for label, shape, linear in plans:
            file = Path(tmp) / f"history-{shape.observations}-{shape.open_tasks}.jsonl"
            gen = generate(lc, shape, file)
            files.append(file)
            print(f"  {NAME}: {label}: generated {gen.observations} observations of {gen.tasks} tasks "
                  f"({gen.bytes / 1e6:.0f} MB, open peak {gen.open_peak}) in {gen.seconds} s", flush=True)
            rows.append({
                "label": label, "observations": gen.observations, "open_target": shape.open_tasks,
                "linearity_series": linear,
                "history": {"tasks": gen.tasks, "open_peak": gen.open_peak, "open_mean": gen.open_mean,
                            "span_s": gen.span_s, "bytes": gen.bytes,
                            "bytes_per_observation": round(gen.bytes / max(gen.observations, 1), 1),
                            "generation_s": gen.seconds},
                "memory_runs": [], "stream_runs": [],
            })
        # Rounds over all histories (not all runs of one history in a row): a busy spell of
        # another tenant then slows one run of each child, not every run of one history.
        for round_index in range(options.rounds):
            for row, file in zip(rows, files, strict=True):
                for mode in ("memory", "stream"):
                    # Small histories take milliseconds: repeat them more (~200k observations).
                    repeat = max(options.repeat, -(-200_000 // row["observations"]))
                    data = _run_child(mode, file, options.horizon_s, repeat, cpu)
                    data["round"] = round_index + 1
                    row[f"{mode}_runs"].append(data)
                    n = data["observations"]
                    print(f"  {NAME}: round {round_index + 1} {row['label']}: {mode:6s} "
                          f"best {round(n / min(data['cpu_seconds'])):>9,} obs/CPU-s  "
                          f"peak RSS {data['rss_peak_mb']} MB  tasks held <= {data['peak_tasks_held']}  "
                          f"others on its CPU {data.get('others_on_core')}", flush=True)
        for row in rows:
            for mode in ("memory", "stream"):
                row[mode] = _merge(row.pop(f"{mode}_runs"), row["observations"], problems, row["label"])
        counted = _count_instructions(files[len(options.sizes) - 1], options, Path(tmp)) \
            if options.instructions else {"skipped": "not asked (--quick)"}
    result = _summarise(options, rows, idle, problems, started, cpu)
    result["instructions"] = counted
    return result


# -- instructions: a figure other tenants cannot move ---------------------------------------

# Lines of the largest ~1k-open history counted: the difference of the two passes is the
# per-observation cost, without the imports and the start of the pass.
INSTRUCTION_LINES = (50_000, 150_000)


def _count_instructions(file: Path, options: Options, tmp: Path) -> dict[str, Any]:
    """Instructions per observation of read + check and of the plain reader (the baseline:
    json.loads + Observation.from_dict a line, no check), under valgrind's cachegrind."""
    if shutil.which("valgrind") is None:
        return {"skipped": "valgrind not found"}
    heads = []
    with file.open("rb") as source:
        lines = list(itertools.islice(source, max(INSTRUCTION_LINES)))
    if len(lines) < max(INSTRUCTION_LINES):
        return {"skipped": f"the largest history has fewer than {max(INSTRUCTION_LINES):,} lines"}
    for count in INSTRUCTION_LINES:
        head = tmp / f"head-{count}.jsonl"
        head.write_bytes(b"".join(lines[:count]))
        heads.append(head)
    per_observation: dict[str, int] = {}
    for mode in ("once", "plain"):
        small, large = (_instructions(mode, head, options.horizon_s) for head in heads)
        per_observation[mode] = round((large - small) / (INSTRUCTION_LINES[1] - INSTRUCTION_LINES[0]))
        print(f"  {NAME}: instructions: {'read + check' if mode == 'once' else 'plain reader'} "
              f"{per_observation[mode]:,} per observation", flush=True)
    return {"tool": "valgrind --tool=cachegrind --cache-sim=no",
            "lines": list(INSTRUCTION_LINES), "read_check_per_observation": per_observation["once"],
            "plain_reader_per_observation": per_observation["plain"],
            "plain_over_read_check": round(per_observation["plain"] / per_observation["once"], 3)}


def _instructions(mode: str, file: Path, horizon: float) -> int:
    cmd = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
           sys.executable, "-m", "benchmarks.checker", mode, str(file), "--horizon", str(horizon)]
    done = subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=1800)
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise BenchmarkError(f"cachegrind ({mode} {file.name}) failed: {done.stderr.strip()[-800:]}")
    return int(found.group(1).replace(",", ""))


def _merge(runs: list[dict[str, Any]], expected: int, problems: list[str], label: str) -> dict[str, Any]:
    """One history's children of one mode, pooled: every timed run of every round."""
    mode = runs[0]["mode"]
    for data in runs:
        if data["observations"] != expected:
            problems.append(f"{label} {mode}: checked {data['observations']} of {expected} observations")
        if data["findings"]:
            problems.append(f"{label} {mode}: {data['findings']} findings on a correct history "
                            f"{data['finding_checks']}")
    cpu_seconds = [t for data in runs for t in data["cpu_seconds"]]
    wall = [t for data in runs for t in data["seconds"]]
    cpu_s = median(cpu_seconds) or 0.0
    # The least disturbed child (its best run is the best): its slice rates and parse time.
    quietest = min(runs, key=lambda data: min(data["cpu_seconds"]))
    merged: dict[str, Any] = {
        "mode": mode, "observations": expected, "runs": len(cpu_seconds),
        "rate": round(expected / cpu_s) if cpu_s else None,
        "best_rate": round(expected / min(cpu_seconds)),
        "wall_rate": round(expected / (median(wall) or 1.0)),
        "median_cpu_s": round(cpu_s, 4),
        "rss_peak_mb": max(data["rss_peak_mb"] for data in runs),
        "rss_after_imports_mb": max(data["rss_after_imports_mb"] for data in runs),
        "peak_tasks_held": runs[0]["peak_tasks_held"],
        "peak_conns_held": runs[0]["peak_conns_held"],
        "metrics": runs[0]["metrics"],
        "findings": max(data["findings"] for data in runs),
        "others_on_core": [data.get("others_on_core") for data in runs],
        "children": runs,
    }
    parse_only = [t for data in runs for t in data.get("parse_only_cpu_seconds", [])]
    if parse_only:
        parse_s = median(parse_only) or 0.0
        merged["parse_only_rate"] = round(expected / parse_s) if parse_s else None
        # The checker's share of streaming: parse + check minus parsing alone (medians).
        merged["check_share_rate"] = round(expected / (cpu_s - parse_s)) if cpu_s > parse_s else None
    if "slice_rates" in quietest:
        merged["slice_rates"] = quietest["slice_rates"]
        merged["rss_after_load_mb"] = quietest.get("rss_after_load_mb")
        merged["parse_rate"] = round(expected / quietest["parse_s"]) if quietest.get("parse_s") else None
    return merged


def _summarise(options: Options, rows: list[dict[str, Any]], idle: dict[str, Any],
               problems: list[str], started: float, cpu: int | None) -> dict[str, Any]:
    series = sorted((r for r in rows if r["linearity_series"]), key=lambda r: r["observations"])
    # Linear growth: the rate at the largest size against the next size down (both past the
    # ramp-up; the smallest history is still filling up with open tasks).
    linearity: dict[str, float | None] = {}
    for mode in ("memory", "stream"):
        if len(series) >= 2 and series[-2][mode]["best_rate"]:
            linearity[mode] = round(series[-1][mode]["best_rate"] / series[-2][mode]["best_rate"], 3)
        else:
            linearity[mode] = None
    # Best of the runs: other tenants of a shared machine only ever slow a run down (medians
    # are reported next to it).
    min_rate = min(r["memory"]["best_rate"] for r in series)
    # Issue #15's second figure: reading the file too (parse + check), at the largest size.
    stream_rate = series[-1]["stream"]["best_rate"]
    idle_mb = idle["rss_after_imports_mb"]
    memory_rows = []
    for r in rows:
        held, rss = r["stream"]["peak_tasks_held"], r["stream"]["rss_peak_mb"]
        memory_rows.append({
            "label": r["label"], "observations": r["observations"],
            "open_peak": r["history"]["open_peak"], "peak_tasks_held": held,
            "peak_conns_held": r["stream"]["peak_conns_held"], "rss_peak_mb": rss,
            "rss_over_idle_mb": round(rss - idle_mb, 1),
            "kb_per_task_held": round((rss - idle_mb) * 1024 / held, 2) if held else None})
    valid = not problems
    met = bool(valid and min_rate >= GOAL_RATE
               and all(v is None or v >= GOAL_LINEARITY for v in linearity.values()))
    return {
        "benchmark": NAME,
        "title": "Lifecycle invariant checker: observations/s and peak RSS on generated histories",
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "valid": valid,
        "problems": problems,
        "goal": {"metric": "in-memory check rate (observations per CPU second, best run of each "
                           "child) at every size of the series; linearity: rate(largest) / "
                           "rate(next size down), in memory and streaming",
                 "threshold": GOAL_RATE, "linearity_threshold": GOAL_LINEARITY, "comparison": ">=",
                 "met": met},
        "min_rate": min_rate,
        "stream_goal": {"metric": "read + check rate (best run) at the largest size of the series",
                        "threshold": GOAL_RATE, "rate": stream_rate,
                        "met": bool(valid and stream_rate >= GOAL_RATE)},
        "linearity": linearity,
        "idle_rss_mb": idle_mb,
        "memory": memory_rows,
        "rows": rows,
        "config": {"sizes": options.sizes, "open_tasks": options.open_tasks,
                   "open_tasks_large": options.open_tasks_large, "horizon_s": options.horizon_s,
                   "repeat": options.repeat, "rounds": options.rounds, "seed": options.seed,
                   "pinning": f"children on CPU {cpu}" if cpu is not None else "not pinned"},
        "method": [line.strip() for line in (__doc__ or "").split("Method:", 1)[-1].split("\n- ")],
    }


def _fmt(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def _instructions_row(counted: dict[str, Any]) -> str:
    if "read_check_per_observation" not in counted:
        return f"| instructions per observation | {counted.get('skipped', 'not counted')} |"
    first, last = counted["lines"]
    return (f"| instructions per observation ({counted['tool']}: passes over the first "
            f"{_label(last)} and {_label(first)} lines, the difference) | read + check "
            f"**{_fmt(counted['read_check_per_observation'])}**; the plain reader alone (the "
            f"baseline, no check) {_fmt(counted['plain_reader_per_observation'])}: "
            f"**{counted['plain_over_read_check']}x** as many |")


def markdown(result: dict[str, Any]) -> list[str]:
    goal = result.get("goal", {})
    cfg = result.get("config", {})
    idle = result.get("idle_rss_mb")
    lines = []
    for row in result.get("rows", []):
        mem, stream, hist = row["memory"], row["stream"], row["history"]
        lines.append(
            f"| {row['label']} ({_fmt(hist['tasks'])} tasks, open peak {_fmt(hist['open_peak'])}, "
            f"{hist['span_s']} s of history) | check in memory **{_fmt(mem['best_rate'])} obs/s** "
            f"(median {_fmt(mem['rate'])}); read + check {_fmt(stream['best_rate'])} (median "
            f"{_fmt(stream['rate'])}) obs/s (medians: reading "
            f"alone {_fmt(stream.get('parse_only_rate'))}, so checking "
            f"{_fmt(stream.get('check_share_rate'))}); "
            f"streaming peak RSS **{stream['rss_peak_mb']} MB** (idle {idle}), tasks held "
            f"<= {_fmt(stream['peak_tasks_held'])} |")
    series = [r for r in result.get("rows", []) if r.get("linearity_series")]
    if series:
        largest = max(series, key=lambda r: r["observations"])
        lines.append(f"| rate over ten slices of the {largest['label']} pass (memory) | "
                     f"{', '.join(_fmt(v) for v in largest['memory'].get('slice_rates', []))} |")
    linearity = result.get("linearity") or {}
    stream_goal = result.get("stream_goal") or {}
    lines += [
        f"| goal: >= {_fmt(int(goal.get('threshold', GOAL_RATE)))} obs/s checking at "
        f"{', '.join(_label(n) for n in cfg.get('sizes', []))}, linear | "
        f"slowest **{_fmt(result.get('min_rate'))} obs/s**; rate at the largest size / next size "
        f"down: memory **{linearity.get('memory')}**, streaming **{linearity.get('stream')}** "
        f"(>= {goal.get('linearity_threshold')}) ({'met' if goal.get('met') else 'NOT met'}) |",
        f"| goal: >= {_fmt(int(goal.get('threshold', GOAL_RATE)))} obs/s reading the file and "
        f"checking at {_label(max(cfg.get('sizes', [0])))} | **{_fmt(stream_goal.get('rate'))} obs/s** "
        f"({'met' if stream_goal.get('met') else 'NOT met'}) |",
        _instructions_row(result.get("instructions") or {}),
        "| memory, streaming: RSS over the idle child / tasks held | "
        + "; ".join(f"{m['label']}: {m['rss_over_idle_mb']} MB / {_fmt(m['peak_tasks_held'])} = "
                    f"{m['kb_per_task_held']} KB" for m in result.get("memory", [])) + " |",
        f"| setup | rates per CPU second of the child (thread time), best and median of "
        f"{cfg.get('rounds')} rounds x >= {cfg.get('repeat')} runs; horizon {cfg.get('horizon_s')} s "
        "(tasks held = open + ended within it); "
        f"{cfg.get('pinning')}; share of that CPU used by other processes during a child: "
        + str(max((v for r in result.get("rows", []) for mode in ("memory", "stream")
                   for v in r[mode].get("others_on_core", []) if v is not None), default=None))
        + " at most |",
    ]
    return lines


if __name__ == "__main__":
    sys.exit(child(sys.argv[1:]))
