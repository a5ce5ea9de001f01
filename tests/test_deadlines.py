"""Suite and run deadlines: a target too slow for them gives a <ID>-DEADLINE finding, the run
folder is still written, and later suites are skipped with the reason."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from harness.net import deadline
from tests.conftest import StartServer
from tests.test_cli import harness


def test_the_deadline_state() -> None:
    deadline.set_deadline(time.monotonic() + 60, "suite", 60)
    try:
        left = deadline.remaining()
        assert left is not None and 59 < left <= 60 and deadline.capped(5) == 5
        deadline.check_deadline()
        deadline.set_deadline(time.monotonic() - 1, "run", 3)
        assert deadline.capped(5) == 0.005
        with pytest.raises(deadline.DeadlineExceeded, match="run deadline of 3 s reached"):
            deadline.check_deadline()
    finally:
        deadline.set_deadline(None)
    assert deadline.remaining() is None and deadline.capped(5) == 5


@pytest.mark.parametrize(("suite", "check", "extra"), [
    ("smoke", "ST-DEADLINE", []),
    ("agents", "AG-DEADLINE", []),
    ("lifecycle", "LC-DEADLINE", ["--tasks", "40"]),
    ("contract", "CT-DEADLINE", ["--max-examples", "50"]),
    ("load", "LD-DEADLINE", ["--duration", "20s"]),
    ("ratelimit", "RL-DEADLINE", ["--rate-window", "5"]),
])
def test_a_suite_too_slow_for_its_deadline_is_a_finding(tmp_path: Path, start_server: StartServer,
                                                         suite: str, check: str, extra: list[str]) -> None:
    # Speed 1: tasks take their real time (seconds), far longer than a 1.5 s suite deadline.
    with start_server(speed=1.0) as srv:
        started = time.monotonic()
        result = harness(suite, "--base-url", srv.url, "--api-key", srv.keys[0], "--api-key", srv.keys[1],
                         "--rate-window", "2", "--suite-deadline", "1.5s", "--out", str(tmp_path / "o"),
                         *extra, cwd=tmp_path, timeout=120)
        elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stdout + result.stderr
    (run_dir,) = (tmp_path / "o").iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    found = [f for f in results["findings"] if f["check"] == check]
    assert found and "suite deadline of 1.5 s" in found[0]["message"], results["findings"]
    assert (run_dir / "summary.md").is_file() and (run_dir / "index.html").is_file()
    assert elapsed < 45, f"{suite} took {elapsed:.1f} s to stop"
    assert "Traceback" not in result.stderr and "Error:" not in result.stderr, result.stderr


def test_the_run_deadline_skips_the_suites_it_leaves_no_time_for(tmp_path: Path,
                                                                 start_server: StartServer) -> None:
    with start_server(speed=1.0) as srv:
        result = harness("check", "--base-url", srv.url, "--api-key", srv.keys[0], "--rate-window", "2",
                         "--suite", "smoke", "--suite", "ratelimit", "--run-deadline", "2s",
                         "--out", str(tmp_path / "o"), cwd=tmp_path, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    (run_dir,) = (tmp_path / "o").iterdir()
    suites = json.loads((run_dir / "results.json").read_text())["suites"]
    assert suites["smoke"]["status"] == "failed" and suites["ratelimit"]["status"] == "skipped"
    assert "run deadline of 2 s left no time" in suites["ratelimit"]["error"]
