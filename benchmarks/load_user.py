"""Throughput of the instrumented Locust user vs a bare FastHttpUser on `GET /tasks/{id}`.

Method:
- The reference server runs as a real process (`harness.net.reference.reference_server`, speed
  1000) with K keys and one completed `infsh/echo` task per key, pinned to one CPU. Its rate
  window is shortened (default 0.5 s: 2,000 reads per key per second, K x that in all) so
  the read budget stays far above what one client process can send; any non-2xx answer
  invalidates the run.
- Each measurement is one Locust process (Locust as a library, LocalRunner, U users, no wait
  time) pinned to the other CPU, for S seconds after the users are spawned. Users rotate over
  the K (task, key) pairs.
  - bare: a FastHttpUser whose task is `self.client.get("/tasks/<id>")` with the key's
    Authorization header: Locust's own per-request cost and nothing else.
  - instrumented: `harness.suites.load.users.ApiUser` doing `get_task()`: per-key budget pacing, a
    Locust request event, the body parsed and digested, an Observation line written to the
    history (flushed every second), HDR latencies and counters, iteration bookkeeping.
- Bare and instrumented alternate (ABBA) after a warm-up of each, in the same benchmark run
  against the same server; ratio = the median over rounds of instrumented / bare req/s within
  the round (paired: a shared machine's speed drifts between rounds more than within one);
  median(instrumented) / median(bare) is reported beside it. The
  client's CPU time per request (getrusage of the Locust process) is reported as a second,
  less load-dependent view, with the client's CPU share (1.0 = the client was the bottleneck).
- wrk (when on PATH) sends the same rotation with U connections on the client CPU: the
  server's ceiling for this endpoint on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import (
    PROJECT_ROOT,
    AbRows,
    BenchmarkError,
    CpuLayout,
    busy_share,
    core_ticks,
    cpu_layout,
    cpu_seconds,
    median,
    pin,
    ratio_of,
    result_head,
    taskset_prefix,
)

NAME = "load_user"
GOAL_RATIO = 0.9
NOISY = 0.15  # share of a CPU used by other processes during a run above which figures are suspect


@dataclass
class Options:
    rounds: int = 6
    seconds: int = 3
    warmup_seconds: int = 2
    users: int = 32
    keys: int = 16
    rate_window: float = 0.5
    wrk: bool = True

    @classmethod
    def quick(cls) -> Options:
        return cls(rounds=2, seconds=2, warmup_seconds=1, users=16, keys=8)


# -- the child: one Locust process -----------------------------------------------------------

def _child(job_path: Path) -> int:
    """`python -m benchmarks.load_user --child JOB`: run one kind of user, print one JSON line."""
    from gevent import monkey

    monkey.patch_all()
    import gevent
    from locust import FastHttpUser, constant, events, task
    from locust.env import Environment

    job = json.loads(job_path.read_text())
    keys = [k for k in os.environ.get("HARNESS_API_KEYS", "").split(",") if k]
    targets: dict[int, str] = {int(k): v for k, v in job["targets"].items()}
    hooks: Any = events
    if job["kind"] == "bare":
        counter = [0]

        class BareUser(FastHttpUser):
            wait_time = constant(0)
            host = job["url"]

            def on_start(self) -> None:
                index = counter[0] % len(keys)
                counter[0] += 1
                self.path = f"/tasks/{targets[index]}"
                self.auth = {"Authorization": f"Bearer {keys[index]}"}

            @task
            def get(self) -> None:
                self.client.get(self.path, headers=self.auth, name="/tasks/{id}")

        user_class: Any = BareUser
    else:
        from harness.suites.load.config import LoadConfig
        from harness.suites.load.session import session_of
        from harness.suites.load.users import ApiUser

        class InstrumentedUser(ApiUser):
            host = job["url"]

            def scenario(self) -> None:
                self.get_task(targets[self.key_index])

        user_class = InstrumentedUser
    env = Environment(user_classes=[user_class], events=events, host=job["url"])
    runner: Any = env.create_local_runner()
    if job["kind"] != "bare":
        session = session_of(env)
        session.library = True
        session.set_plan(LoadConfig(scenario="bench", base_url=job["url"], window_s=job["window"],
                                    limits=job["limits"], deadline_s=30.0, max_tasks=1,
                                    out_dir=job["out_dir"], library=True))
    hooks.init.fire(environment=env, runner=runner, web_ui=None)
    users = int(job["users"])
    runner.start(users, spawn_rate=users)
    while runner.user_count < users:
        gevent.sleep(0.05)
    gevent.sleep(0.3)
    before_n, before_f = env.stats.total.num_requests, env.stats.total.num_failures
    cpus = frozenset(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu0 = usage.ru_utime + usage.ru_stime
    ticks0 = core_ticks(cpus)
    t0 = time.monotonic()
    gevent.sleep(float(job["seconds"]))
    elapsed = time.monotonic() - t0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime - cpu0
    core = busy_share(ticks0, core_ticks(cpus))
    requests = env.stats.total.num_requests - before_n
    failures = env.stats.total.num_failures - before_f
    runner.quit()
    print(json.dumps({"requests": requests, "failures": failures, "seconds": elapsed, "cpu_s": cpu,
                      "core_busy": core,
                      "errors": {str(k): v.occurrences for k, v in env.stats.errors.items()}}),
          flush=True)
    return 0


# -- the parent -------------------------------------------------------------------------------

def _measure(kind: str, url: str, targets: dict[int, str], keys: list[str], options: Options,
             layout: CpuLayout, seconds: int, workdir: Path, server_pid: int) -> dict[str, Any]:
    from harness.contract import load_limits

    out_dir = workdir / f"history-{kind}-{time.monotonic_ns()}"
    job = {"kind": kind, "url": url, "targets": targets, "users": options.users, "seconds": seconds,
           "window": options.rate_window, "out_dir": str(out_dir),
           "limits": {n: g.limit for n, g in load_limits().groups.items()}}
    job_path = workdir / f"job-{kind}.json"
    job_path.write_text(json.dumps(job))
    env = {**os.environ, "HARNESS_API_KEYS": ",".join(keys)}  # keys only in the environment
    cmd = [*taskset_prefix(layout.client), sys.executable, "-m", "benchmarks.load_user", "--child",
           str(job_path)]
    server_before, core_before = cpu_seconds(server_pid), core_ticks(layout.server)
    started = time.monotonic()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, env=env,
                              cwd=PROJECT_ROOT)
    except subprocess.TimeoutExpired as exc:
        raise BenchmarkError(f"{kind} Locust process did not finish") from exc
    wall = time.monotonic() - started
    server_after, core_busy = cpu_seconds(server_pid), busy_share(core_before, core_ticks(layout.server))
    line = next((x for x in reversed(done.stdout.splitlines()) if x.startswith("{")), None)
    if done.returncode != 0 or line is None:
        raise BenchmarkError(f"{kind} Locust process failed ({done.returncode}): "
                             f"{done.stderr.strip()[-400:]}")
    data = json.loads(line)
    requests = int(data["requests"])
    row = {"kind": kind, "requests": requests, "failures": int(data["failures"]),
           "seconds": round(float(data["seconds"]), 3),
           "rps": round(requests / float(data["seconds"]), 1) if data["seconds"] else 0.0,
           "client_cpu_s": round(float(data["cpu_s"]), 3),
           "client_cpu_busy": round(float(data["cpu_s"]) / float(data["seconds"]), 3),
           "client_cpu_us_per_request": round(float(data["cpu_s"]) / requests * 1e6, 1)
           if requests else None, "errors": data.get("errors", {})}
    if server_before is not None and server_after is not None and wall > 0:
        # Over the child's whole life (start-up included): a rough view of who was the bottleneck.
        row["server_cpu_busy"] = round((server_after - server_before) / wall, 3)
        if core_busy is not None:
            row["others_on_server_core"] = round(max(0.0, core_busy - row["server_cpu_busy"]), 3)
    if data.get("core_busy") is not None and layout.client is not None:
        # The client's CPU(s) during the measurement, minus the Locust process itself.
        share = float(data["core_busy"]) * len(layout.client)
        row["others_on_client_core"] = round(max(0.0, share - row["client_cpu_busy"]), 3)
    if kind == "instrumented" and out_dir.exists():
        history = out_dir / "observations.w0.jsonl"
        row["history_lines"] = sum(1 for _ in history.open()) if history.exists() else 0
    return row


def run(options: Options | None = None) -> dict[str, Any]:
    """Measure both users against one reference server; the benchmark's result."""
    from benchmarks.get_task import _prepare_tasks
    from benchmarks.loadgen import Target, generator_name, run_load
    from harness.net.reference import fresh_keys, reference_server

    options = options or Options()
    layout = cpu_layout()
    keys = fresh_keys(options.keys)
    started = time.time()
    rows: list[dict[str, Any]] = []
    warmup: list[dict[str, Any]] = []
    wrk_row: dict[str, Any] | None = None
    with reference_server(keys=keys, rate_window=options.rate_window, speed=1000.0) as ref, \
            tempfile.TemporaryDirectory(prefix="bench-load-user-") as tmp:
        pin(ref.process.pid, layout.server)
        tasks = _prepare_tasks(ref.url, keys)
        by_key = {key: task_id for task_id, (key, _, _) in tasks.items()}
        targets = {index: by_key[key] for index, key in enumerate(keys)}
        workdir = Path(tmp)
        for kind in ("bare", "instrumented"):
            warmup.append(_measure(kind, ref.url, targets, keys, options, layout,
                                   options.warmup_seconds, workdir, ref.process.pid))
        for round_index in range(options.rounds):
            order = ["bare", "instrumented"] if round_index % 2 == 0 else ["instrumented", "bare"]
            for kind in order:
                row = _measure(kind, ref.url, targets, keys, options, layout, options.seconds, workdir,
                               ref.process.pid)
                row["round"] = round_index + 1
                rows.append(row)
                print(f"  {NAME}: round {round_index + 1} {kind:12s} {row['rps']:9.1f} req/s  "
                      f"client CPU {row['client_cpu_busy']}  "
                      f"{row['client_cpu_us_per_request']} µs/req  failures {row['failures']}  "
                      f"others on server core {row.get('others_on_server_core')}, "
                      f"on client core {row.get('others_on_client_core')}",
                      flush=True)
        if options.wrk and generator_name("auto") == "wrk":
            load = run_load("wrk", ref.url, [Target(f"/tasks/{targets[i]}", keys[i])
                                             for i in range(len(keys))],
                            options.users, options.seconds, layout.client)
            wrk_row = load.to_dict()
            print(f"  {NAME}: wrk ceiling {wrk_row['rps']:9.1f} req/s", flush=True)
    return _summarise(options, layout, rows, warmup, wrk_row, started)


def _summarise(options: Options, layout: CpuLayout, rows: list[dict[str, Any]],
               warmup: list[dict[str, Any]], wrk_row: dict[str, Any] | None,
               started: float) -> dict[str, Any]:
    ab = AbRows(rows, "kind")
    med = ab.median
    bare, inst = med("bare", "rps"), med("instrumented", "rps")
    ratio = ratio_of(inst, bare)
    bare_cpu, inst_cpu = med("bare", "client_cpu_us_per_request"), med("instrumented",
                                                                          "client_cpu_us_per_request")
    cpu_ratio = ratio_of(bare_cpu, inst_cpu) if bare_cpu else None
    pairs = ab.paired("instrumented", "bare", options.rounds)
    problems = [f"round {r['round']} {r['kind']}: {r['failures']} failures {r['errors']}"
                for r in rows if r["failures"]]
    if wrk_row and (wrk_row.get("non_2xx") or wrk_row.get("socket_errors")):
        problems.append(f"wrk: {wrk_row.get('non_2xx')} non-2xx, {wrk_row.get('socket_errors')} "
                        "socket errors")
    paired = median(pairs)
    paired = round(paired, 3) if paired is not None else None
    return {
        **result_head(NAME, "Locust user throughput on GET /tasks/{id}: instrumented vs bare "
                      "FastHttpUser", started, problems, paired, GOAL_RATIO),
        "ratio_of_medians": ratio,
        "ratio_per_round": pairs,
        "median_rps": {"bare": bare, "instrumented": inst,
                       "wrk": wrk_row.get("rps") if wrk_row else None},
        "median_client_cpu_us_per_request": {"bare": bare_cpu, "instrumented": inst_cpu},
        "cpu_ratio": cpu_ratio,
        "median_client_cpu_busy": {"bare": med("bare", "client_cpu_busy"),
                                   "instrumented": med("instrumented", "client_cpu_busy")},
        "median_others_on_server_core": {"bare": med("bare", "others_on_server_core"),
                                         "instrumented": med("instrumented", "others_on_server_core")},
        "median_others_on_client_core": {"bare": med("bare", "others_on_client_core"),
                                         "instrumented": med("instrumented", "others_on_client_core")},
        "noisy": any((r.get("others_on_server_core") or 0) > NOISY or (r.get("others_on_client_core") or 0)
                     > NOISY for r in rows),
        "config": {**asdict(options), "pinning": layout.describe()},
        "method": [line.strip() for line in (__doc__ or "").split("Method:")[-1].split("\n- ")
                   if line.strip()],
        "runs": rows,
        "warmup": warmup,
        "wrk": wrk_row,
    }


def markdown(result: dict[str, Any]) -> list[str]:
    rps = result.get("median_rps", {})
    cpu = result.get("median_client_cpu_us_per_request", {})
    busy = result.get("median_client_cpu_busy", {})
    cfg = result.get("config", {})
    goal = result.get("goal", {})
    return [
        f"| bare FastHttpUser median | {rps.get('bare')} req/s ({cpu.get('bare')} µs client CPU/req, "
        f"client CPU share {busy.get('bare')}) |",
        f"| instrumented user median | {rps.get('instrumented')} req/s ({cpu.get('instrumented')} µs "
        f"client CPU/req, client CPU share {busy.get('instrumented')}) |",
        f"| ratio, median of paired rounds (goal >= {goal.get('threshold')}) | **{result.get('ratio')}** "
        f"({'met' if goal.get('met') else 'NOT met'}); per round {result.get('ratio_per_round')}; "
        f"ratio of medians {result.get('ratio_of_medians')} |",
        f"| CPU-per-request ratio (bare / instrumented) | {result.get('cpu_ratio')} |",
        f"| wrk ceiling (same endpoint) | {rps.get('wrk')} req/s |",
        f"| other processes on the server's / client's CPU (median share) | "
        f"{result.get('median_others_on_server_core')} / {result.get('median_others_on_client_core')}"
        f"{' (noisy: treat the ratio with care)' if result.get('noisy') else ''} |",
        f"| setup | {cfg.get('users')} users, {cfg.get('rounds')} x {cfg.get('seconds')} s each, "
        f"{cfg.get('keys')} keys, rate window {cfg.get('rate_window')} s; {cfg.get('pinning')} |",
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load_user")
    parser.add_argument("--child", type=Path, help="internal: run one Locust process")
    parser.add_argument("--quick", action="store_true")
    cli = parser.parse_args()
    if cli.child is not None:
        sys.exit(_child(cli.child))
    print(json.dumps(run(Options.quick() if cli.quick else Options()), indent=1))
