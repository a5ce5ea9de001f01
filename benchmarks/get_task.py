"""`GET /tasks/{id}` throughput of the reference server, as a ratio to a bare Starlette route.

Method:
- The reference server runs as a real process (`harness.net.reference.reference_server`, the same
  `python -m harness serve` the harness uses) with K keys, one completed `infsh/echo` task per
  key. The load rotates over the K (task, key) pairs, so every request goes through auth, the
  rate limiter (K buckets), the task lookup, serialisation and the rate-limit headers.
- The limiter admits 1000 reads per key per window. With the contract's 60 s window that is
  ~17 req/s per key, far below what one process serves, and a rejected request (429) is not
  the path being measured. So the server runs with a short `--rate-window` (default 0.05 s:
  20,000 reads/s per key, K x that in all): the limiter does the same work per request as with
  a 60 s window (one dict lookup and counter bump; a bucket is replaced once per window), and
  every answer is checked to be a 2xx (a run with any non-2xx answer is marked invalid).
- The baseline is `benchmarks.baseline_app`: the same uvicorn settings, one process, one
  route `GET /tasks/{id}` returning the very same task dicts (fetched from the reference
  server first) through Starlette's JSONResponse, without auth, limiter or engine.
- Both servers are started once and measured alternately in ABBA order (baseline, reference,
  reference, baseline, ...), after a warm-up of each; the ratio is median(reference req/s) /
  median(baseline req/s). Servers are pinned to one CPU and the load generator to the other.
  Server CPU time per request (from /proc) is reported as a second, less load-dependent view.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import (
    AbRows,
    BenchmarkError,
    CpuLayout,
    announced_server,
    busy_share,
    core_ticks,
    cpu_layout,
    cpu_seconds,
    pin,
    ratio_of,
    result_head,
)
from benchmarks.loadgen import LoadResult, Target, generator_name, run_load
from harness.net.reference import fresh_keys, reference_server

NAME = "get_task"
GOAL_RATIO = 0.6
COMPLETED = 10


@dataclass
class Options:
    rounds: int = 3
    seconds: int = 5
    warmup_seconds: int = 2
    connections: int = 32
    keys: int = 8
    rate_window: float = 0.05
    loadgen: str = "auto"

    @classmethod
    def quick(cls) -> Options:
        return cls(rounds=2, seconds=1, warmup_seconds=1, connections=16, keys=4)


def _prepare_tasks(url: str, keys: list[str]) -> dict[str, tuple[str, dict[str, Any], int]]:
    """One completed echo task per key; returns id -> (key, task dict, response body bytes)."""
    tasks: dict[str, str] = {}
    with httpx.Client(base_url=url, timeout=10.0) as client:
        for key in keys:
            answer = client.post("/apps/run", headers={"Authorization": f"Bearer {key}"},
                                 json={"app": "infsh/echo", "input": {"message": "benchmark"}})
            if answer.status_code != 200:
                raise BenchmarkError(f"POST /apps/run answered {answer.status_code}: {answer.text}")
            tasks[answer.json()["data"]["id"]] = key
        out: dict[str, tuple[str, dict[str, Any], int]] = {}
        deadline = time.monotonic() + 30.0
        while len(out) < len(tasks):
            if time.monotonic() > deadline:
                raise BenchmarkError("benchmark tasks did not complete within 30 s")
            for task_id, key in tasks.items():
                if task_id in out:
                    continue
                answer = client.get(f"/tasks/{task_id}", headers={"Authorization": f"Bearer {key}"})
                if answer.status_code == 200 and answer.json()["data"]["status"] == COMPLETED:
                    out[task_id] = (key, answer.json()["data"], len(answer.content))
            time.sleep(0.05)
    return out


def _body_size(url: str, target: Target) -> int:
    answer = httpx.get(f"{url}{target.path}", headers={"Authorization": f"Bearer {target.key}"},
                       timeout=10.0)
    if answer.status_code != 200:
        raise BenchmarkError(f"{url}{target.path} answered {answer.status_code}")
    return len(answer.content)


def _measure(label: str, url: str, pid: int, targets: list[Target], options: Options,
             generator: str, layout: CpuLayout, seconds: int) -> dict[str, Any]:
    core_before = core_ticks(layout.server)
    before = cpu_seconds(pid)
    load: LoadResult = run_load(generator, url, targets, options.connections, seconds, layout.client)
    after = cpu_seconds(pid)
    core_busy = busy_share(core_before, core_ticks(layout.server))
    row: dict[str, Any] = {"server": label, **load.to_dict()}
    if before is not None and after is not None and load.requests:
        used = after - before
        row["server_cpu_s"] = round(used, 3)
        row["server_cpu_busy"] = round(used / load.seconds, 3) if load.seconds else None
        row["server_cpu_us_per_request"] = round(used / load.requests * 1e6, 1)
        if core_busy is not None and row["server_cpu_busy"] is not None:
            # What else ran on the server's CPU: a noisy neighbour shows here.
            row["server_core_busy"] = round(core_busy, 3)
            row["others_on_server_core"] = round(max(0.0, core_busy - row["server_cpu_busy"]), 3)
    return row


def run(options: Options) -> dict[str, Any]:
    generator = generator_name(options.loadgen)
    layout = cpu_layout()
    keys = fresh_keys(options.keys)
    started = time.time()
    with reference_server(keys=keys, rate_window=options.rate_window, speed=1000.0) as ref:
        pin(ref.process.pid, layout.server)
        tasks = _prepare_tasks(ref.url, keys)
        targets = [Target(f"/tasks/{task_id}", key) for task_id, (key, _, _) in tasks.items()]
        ref_sizes = sorted({size for _, _, size in tasks.values()})
        with tempfile.TemporaryDirectory(prefix="bench-baseline-") as tmp:
            bodies_file = Path(tmp) / "bodies.json"
            bodies_file.write_text(json.dumps({tid: data for tid, (_, data, _) in tasks.items()}))
            with announced_server([sys.executable, "-m", "benchmarks.baseline_app",
                                   "--bodies", str(bodies_file)]) as (base_proc, base_url):
                pin(base_proc.pid, layout.server)
                base_sizes = sorted({_body_size(base_url, t) for t in targets})
                servers = {"baseline": (base_url, base_proc.pid),
                           "reference": (ref.url, ref.process.pid)}
                warmup = [_measure(label, url, pid, targets, options, generator, layout,
                                   options.warmup_seconds)
                          for label, (url, pid) in servers.items()]
                rows: list[dict[str, Any]] = []
                for round_index in range(options.rounds):
                    order = (["baseline", "reference"] if round_index % 2 == 0
                             else ["reference", "baseline"])
                    for label in order:
                        url, pid = servers[label]
                        row = _measure(label, url, pid, targets, options, generator, layout,
                                       options.seconds)
                        row["round"] = round_index + 1
                        rows.append(row)
                        print(f"  {NAME}: round {round_index + 1} {label:9s} "
                              f"{row['rps']:9.1f} req/s  non-2xx {row['non_2xx']}  "
                              f"errors {row['socket_errors'] + row['timeouts']}  "
                              f"server CPU {row.get('server_cpu_busy')}  "
                              f"others on its core {row.get('others_on_server_core')}", flush=True)
    return _summarise(options, generator, layout, rows, warmup, ref_sizes, base_sizes, started)


def _summarise(options: Options, generator: str, layout: CpuLayout, rows: list[dict[str, Any]],
               warmup: list[dict[str, Any]], ref_sizes: list[int], base_sizes: list[int],
               started: float) -> dict[str, Any]:
    ab = AbRows(rows, "server")
    med = ab.median
    base_rps, ref_rps = med("baseline", "rps"), med("reference", "rps")
    ratio = ratio_of(ref_rps, base_rps)
    base_cpu = med("baseline", "server_cpu_us_per_request")
    ref_cpu = med("reference", "server_cpu_us_per_request")
    cpu_ratio = ratio_of(base_cpu, ref_cpu) if base_cpu else None
    others = med("baseline", "others_on_server_core"), med("reference", "others_on_server_core")
    problems = [f"round {r['round']} {r['server']}: {r['non_2xx']} non-2xx, "
                f"{r['socket_errors']} socket errors, {r['timeouts']} timeouts"
                for r in rows if r["non_2xx"] or r["socket_errors"] or r["timeouts"]]
    return {
        **result_head(NAME, "GET /tasks/{id} throughput: reference server vs bare Starlette route",
                      started, problems, ratio, GOAL_RATIO),
        "ratio_per_round": ab.paired("reference", "baseline", options.rounds),
        "median_rps": {"baseline": base_rps, "reference": ref_rps},
        "median_server_cpu_us_per_request": {"baseline": base_cpu, "reference": ref_cpu},
        "cpu_ratio": cpu_ratio,
        "median_others_on_server_core": {"baseline": others[0], "reference": others[1]},
        "body_bytes": {"baseline": base_sizes, "reference": ref_sizes},
        "config": {
            "load_generator": generator, "connections": options.connections,
            "seconds_per_run": options.seconds, "rounds": options.rounds,
            "warmup_seconds": options.warmup_seconds, "keys": options.keys,
            "tasks": options.keys, "rate_window_s": options.rate_window,
            "read_budget_per_s": round(1000 / options.rate_window * options.keys),
            "pinning": layout.describe(),
        },
        "method": [
            "reference: `python -m harness serve` via harness.net.reference.reference_server "
            f"(--speed 1000, --rate-window {options.rate_window:g}), {options.keys} keys with "
            "one completed infsh/echo task each; every request is authenticated, counted by "
            "the rate limiter and answered 200 with rate-limit headers",
            f"rate window shortened to {options.rate_window:g} s so the 1000-per-window read "
            "budget does not cap the measurement; limiter work per request is unchanged; "
            "any non-2xx answer invalidates the run",
            "baseline: benchmarks.baseline_app (bare Starlette JSONResponse of the same task "
            "dicts) on the same uvicorn settings as harness/server/serve.py",
            "alternating ABBA rounds after a warm-up; ratio = median(reference req/s) / "
            "median(baseline req/s); cpu_ratio = baseline CPU per request / reference CPU "
            "per request (server CPU time from /proc); others_on_server_core = share of the "
            "server's CPU used by anything else (other processes, hypervisor steal) during a run",
        ],
        "runs": rows,
        "warmup": warmup,
    }


def markdown(result: dict[str, Any]) -> list[str]:
    rps = result.get("median_rps", {})
    cpu = result.get("median_server_cpu_us_per_request", {})
    cfg = result.get("config", {})
    goal = result.get("goal", {})
    return [
        f"| baseline median | {rps.get('baseline')} req/s ({cpu.get('baseline')} µs server CPU/req) |",
        f"| reference median | {rps.get('reference')} req/s ({cpu.get('reference')} µs server CPU/req) |",
        f"| ratio (goal >= {goal.get('threshold')}) | **{result.get('ratio')}** "
        f"({'met' if goal.get('met') else 'NOT met'}); per round {result.get('ratio_per_round')} |",
        f"| CPU-per-request ratio | {result.get('cpu_ratio')} |",
        f"| other processes on the server's CPU (median share) | "
        f"{result.get('median_others_on_server_core')} |",
        f"| body bytes | reference {result.get('body_bytes', {}).get('reference')}, "
        f"baseline {result.get('body_bytes', {}).get('baseline')} |",
        f"| setup | {cfg.get('load_generator')}, {cfg.get('connections')} connections, "
        f"{cfg.get('rounds')} x {cfg.get('seconds_per_run')} s each, {cfg.get('keys')} keys, "
        f"rate window {cfg.get('rate_window_s')} s; {cfg.get('pinning')} |",
    ]
