"""Every locustfile runs under plain `locust -f ... --headless` against the reference server.

Each file gets its own keys (the limit scenarios spend whole windows), the flows run side by
side, then the two limit scenarios. The harness hooks check each run when it stops and write
`findings.json` / `metrics.json` next to the history; a finding of severity error would make
Locust's exit code 1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.net.reference import fresh_keys, reference_server

PROJECT = Path(__file__).resolve().parents[2]
LOCUST = str(Path(sys.executable).with_name("locust"))
FLOWS = ["run_wait", "fire_and_forget_poll", "stream_sse", "upload", "mixed", "agent_chat"]
LIMITS = ["at_limit", "over_limit"]
USERS = {"at_limit": "6", "over_limit": "12"}


def _start(name: str, url: str, keys: list[str], out: Path, seconds: str) -> subprocess.Popen[str]:
    env = {**os.environ, "HARNESS_BASE_URL": url, "HARNESS_API_KEYS": ",".join(keys),
           "HARNESS_RATE_WINDOW": "2", "HARNESS_DEADLINE": "5", "HARNESS_LOAD_DIR": str(out)}
    users = USERS.get(name, "3")
    return subprocess.Popen([LOCUST, "-f", f"locustfiles/{name}.py", "--headless", "-u", users, "-r",
                             users, "-t", seconds, "--only-summary", "--csv", str(out / "csv")],
                            cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def _finish(name: str, process: subprocess.Popen[str], out: Path, keys: list[str]) -> dict[str, object]:
    output, _ = process.communicate(timeout=90)
    assert process.returncode == 0, f"{name}: exit {process.returncode}\n{output[-3000:]}"
    assert not any(key in output for key in keys), f"{name}: a key was logged"
    findings = json.loads((out / "findings.json").read_text())
    assert [f for f in findings if f["severity"] == "error"] == [], findings
    metrics: dict[str, object] = json.loads((out / "metrics.json").read_text())
    assert metrics["requests"] and metrics["errors"] == 0, f"{name} {metrics}\n{output[-2500:]}"
    assert (out / "observations.jsonl").stat().st_size > 0
    assert Path(str(out / "csv") + "_stats.csv").exists()  # Locust's own --csv still works
    return metrics


@pytest.mark.parametrize("batch", [FLOWS, LIMITS], ids=["flows", "limits"])
def test_locustfiles_run_headless(batch: list[str], tmp_path: Path) -> None:
    keys = fresh_keys(2 * len(batch))
    with reference_server(keys, rate_window=2.0, speed=20.0,
                          extra_args=["--heartbeat", "0.2"]) as server:
        seconds = "5s" if batch is LIMITS else "2s"
        runs = {name: (_start(name, server.url, keys[2 * i:2 * i + (1 if name in LIMITS else 2)],
                              tmp_path / name, seconds), tmp_path / name)
                for i, name in enumerate(batch)}
        results = {name: _finish(name, process, out, keys) for name, (process, out) in runs.items()}
    if "agent_chat" in results:
        chats = results["agent_chat"]["scenarios"]["agent_chat"]  # type: ignore[index]
        assert chats["counts"]["tasks_created"] > 0 and chats["by_request"]["chat_stream"]["errors"] == 0
    if "at_limit" in results:
        assert results["at_limit"]["rate_limited"] == 0
        assert results["over_limit"]["rate_limited"]
        limits = results["over_limit"]["scenarios"]["over_limit"]["limits"]  # type: ignore[index]
        assert limits["header_problems"] == {}
    for path in tmp_path.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            assert not any(key in text for key in keys), f"a key leaked into {path}"


def test_a_locustfile_refuses_a_remote_target(tmp_path: Path) -> None:
    env = {**os.environ, "HARNESS_BASE_URL": "https://api.example.com", "HARNESS_API_KEYS": "inf_x",
           "HARNESS_LOAD_DIR": str(tmp_path)}
    done = subprocess.run([LOCUST, "-f", "locustfiles/run_wait.py", "--headless", "-u", "1", "-t", "2s"],
                          cwd=PROJECT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "not loopback" in done.stdout + done.stderr and "Traceback" not in done.stdout + done.stderr


def test_a_locustfile_refuses_a_bad_setting_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "HARNESS_BASE_URL": "http://127.0.0.1:9", "HARNESS_API_KEYS": "inf_x",
           "HARNESS_LOAD_DIR": str(tmp_path), "HARNESS_DURATION": "soon"}
    done = subprocess.run([LOCUST, "-f", "locustfiles/run_wait.py", "--headless", "-u", "1", "-t", "2s"],
                          cwd=PROJECT, env=env, capture_output=True, text=True, timeout=60)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "setting duration (from HARNESS_DURATION)" in output and "Traceback" not in output
    assert not list(PROJECT.glob("*.json*")), "a refused run wrote into the working directory"
