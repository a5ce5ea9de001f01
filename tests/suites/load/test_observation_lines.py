"""The history lines of the load users decode to the expected Observations (golden cases).

`observation_probe.py` drives ApiUser over a scripted fake transport in its own process (gevent
patches the whole process); the lines it prints are decoded here with the history's decoder.
Times and the random observer name are normalized (only their presence matters); fields that
are None or empty are left out of the golden file. The golden lines are those of the users
before they wrote through `Observation.to_json`, but for three cases: `over_429_legacy` (the 429
body rule is now the rate-limit suite's, so a bare legacy `error` body is `rl_problem: false`),
`get_task_superscript_remaining` (the old user raised inside int()) and `get_no_answer` (a
timeout before the head is `NoAnswer`: indeterminate, not an error).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from harness.history import Observation

HERE = Path(__file__).resolve().parent
GOLDEN: dict[str, Any] = json.loads((HERE / "observation_lines.json").read_text())


@cache
def _probe() -> dict[str, Any]:
    done = subprocess.run([sys.executable, str(HERE / "observation_probe.py")], cwd=HERE.parents[2],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _normalized(line: str, observers: list[str]) -> dict[str, Any]:
    obs = dataclasses.asdict(Observation.from_dict(json.loads(line)))
    assert isinstance(obs["send_ns"], int) and isinstance(obs["wall"], float)
    assert obs["recv_ns"] is None or obs["recv_ns"] >= obs["send_ns"]
    obs["send_ns"], obs["wall"] = "ns", "wall"
    obs["recv_ns"] = None if obs["recv_ns"] is None else "ns"
    names = {name: f"U{i}" for i, name in enumerate(observers)}
    obs["observer"] = names[obs["observer"]]
    if obs["conn"] is not None:
        owner, _, rest = obs["conn"].partition("/")
        obs["conn"] = f"{names[owner]}/{rest}"
    return {name: value for name, value in obs.items() if value is not None and value != {}}


@pytest.mark.parametrize("case", sorted(GOLDEN))
def test_lines_decode_to_the_expected_observations(case: str) -> None:
    got = _probe()
    observers = got["observers"]
    lines = got[case]["lines"]
    assert [_normalized(line, observers) for line in lines] == GOLDEN[case]["observations"]
    assert got[case].get("stream") == GOLDEN[case].get("stream")
