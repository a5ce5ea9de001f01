"""Many machines, on loopback: `harness load --master --expect-workers 2` and two `harness load
--worker` processes started from the CLI; the histories are merged and checked, the figures summed,
and a worker of another harness version refuses the plan."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from harness import __version__
from harness.net.reference import fresh_keys, reference_server
from harness.suites.load.config import LoadConfig


def _free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return int(probe.getsockname()[1])


def test_a_worker_refuses_a_master_of_another_version() -> None:
    own = LoadConfig(base_url="http://127.0.0.1:1")
    older_master = LoadConfig(base_url="http://127.0.0.1:1", harness_version="0.0.1")
    _, refusal = older_master.as_worker_of_this_machine(own)
    assert refusal is not None and f"master runs harness 0.0.1, this worker {__version__}" in refusal
    older = LoadConfig.from_json(json.dumps({"base_url": "http://127.0.0.1:1"}))
    assert "(unknown)" in (older.as_worker_of_this_machine(own)[1] or "")
    assert LoadConfig.from_json(own.to_json()).as_worker_of_this_machine(own)[1] is None


@pytest.mark.timeout(150)
def test_a_master_and_two_workers_from_the_command_line(tmp_path: Path) -> None:
    keys = fresh_keys(2)
    port = _free_port()
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    with reference_server(keys, rate_window=2.0, speed=50.0, extra_args=["--heartbeat", "0.2"]) as server:
        master = subprocess.Popen(
            [sys.executable, "-m", "harness", "load", "--base-url", server.url, "--rate-window", "2",
             "--master", "--expect-workers", "2", "--master-bind", "127.0.0.1", "--master-port", str(port),
             "--scenario", "fire_and_forget_poll", "--users", "4", "--duration", "3s", "--out",
             str(tmp_path / "out")],
            env={**base, "HARNESS_API_KEYS": ",".join(keys)}, cwd=tmp_path, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        workers = [subprocess.Popen(
            [sys.executable, "-m", "harness", "load", "--worker", "--master-host", "127.0.0.1",
             "--master-port", str(port)],
            env={**base, "HARNESS_API_KEYS": key}, cwd=tmp_path, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE) for key in keys]
        try:
            out, err = master.communicate(timeout=120)
            for worker in workers:
                worker.communicate(timeout=20)
        finally:
            for child in (master, *workers):
                if child.poll() is None:
                    child.kill()
                    child.wait()
    assert master.returncode == 0, (out + err)[-3000:]
    (run_dir,) = (tmp_path / "out").iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    load = results["suites"]["load"]
    scenario = load["metrics"]["scenarios"]["fire_and_forget_poll"]
    assert scenario["workers"] == 2 and scenario["requests"] > 0 and results["findings"] == []
    # Both workers' lines are in the one history, merged, and the figures are their sum.
    summary = json.loads((run_dir / "load" / "fire_and_forget_poll" / "summary.json").read_text())
    assert len(summary["workers"]) == 2 and all(w["done"] for w in summary["workers"])
    assert sum(row["requests"] for row in scenario["endpoints"]) == scenario["requests"]
    assert load["metrics"]["observations_appended"] == scenario["observations"] > 0
    assert not any(k in (out + err) for k in keys)
