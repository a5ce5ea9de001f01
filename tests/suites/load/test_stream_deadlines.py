"""The load users' stream reader ends at its idle and total deadlines and at the line cap, each
an error with its reason (`stream_probe.py` runs `read_stream` over scripted raw streams)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from harness.net.decoders import MAX_LINE

HERE = Path(__file__).resolve().parent


def test_a_silent_a_dripping_and_an_overlong_stream_each_end_with_their_reason() -> None:
    done = subprocess.run([sys.executable, str(HERE / "stream_probe.py")], cwd=HERE.parents[2],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    silent, drip, overlong = got["silent"], got["drip"], got["overlong"]
    assert silent["cut"] == "no byte for 0.3 s" and silent["events"] == 1 and silent["took"] < 2
    assert silent["failure"] == "stream cut: no byte for 0.3 s"
    # A byte every 50 ms never trips the idle deadline; the task's deadline ends it.
    assert drip["cut"] is None and drip["timed_out"] and 0.5 < drip["took"] < 2
    assert drip["failure"] == "no terminal update within the task deadline"
    assert overlong["cut"] == f"line longer than {MAX_LINE} bytes (the rest is skipped)"
    assert got["reasons"] == {"stream_ndjson: stream cut: no byte for 0.3 s": 1,
                              "stream_ndjson: no terminal update within the task deadline": 1,
                              f"stream_ndjson: stream cut: {overlong['cut']}": 1}
