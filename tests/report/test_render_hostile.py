"""The renderer takes any value a target sent: every output is written, whatever the history holds."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.findings import RunResult, SuiteResult
from harness.history import HISTORY_FILE
from harness.report.render import OUTPUTS, render_result

odd_ints = st.one_of(st.integers(-(2**70), 2**70), st.sampled_from([0, -1, 2**63, -(2**63) - 1, 10**23]))
odd_floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([-1e18, 1e300]))
odd_values = st.one_of(odd_ints, odd_floats, st.text(max_size=20), st.none(), st.booleans(),
                       st.lists(st.integers(), max_size=3),
                       st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))
channels = st.sampled_from(["run", "get", "status", "ndjson", "sse", "cancel", "list", "files", "?", ""])


# Half plausible (so the charts have points to draw), half anything a target might make us write.
walls = st.one_of(st.floats(1.7e9, 1.8e9), odd_floats)
sends = st.one_of(st.integers(10**12, 10**12 + 10**10), odd_ints)


@st.composite
def observations(draw: st.DrawFn) -> dict[str, Any]:
    send = draw(sends)
    return {
        "task": draw(st.one_of(st.none(), st.text(max_size=12))),
        "observer": draw(st.text(max_size=8)),
        "channel": draw(channels),
        "send_ns": send,
        "recv_ns": draw(st.one_of(st.none(), odd_ints, st.integers(0, 10**10).map(lambda d: send + d))),
        "wall": draw(walls),
        "http": draw(st.one_of(st.none(), st.sampled_from([200, 201, 204, 404, 429, 500]), odd_ints)),
        "status": draw(odd_values),
        "seq": draw(st.one_of(st.none(), odd_ints)),
        "key": draw(st.one_of(st.none(), st.text(max_size=6))),
        "extra": {"rl_remaining": draw(st.one_of(st.integers(0, 100), odd_values)),
                  "rl_group": draw(st.one_of(st.text(max_size=6), odd_ints)),
                  "rl_reset": draw(odd_values), "retry_after": draw(odd_values)},
    }


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(observations(), min_size=1, max_size=12))
def test_every_output_is_written_whatever_the_history_holds(lines: list[dict[str, Any]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp)
        with (run_dir / HISTORY_FILE).open("w") as out:
            for line in lines:
                out.write(json.dumps(line, allow_nan=True) + "\n")
        result = RunResult(run_id="r", target="http://127.0.0.1:1", started_at="2026-01-01T00:00:00Z",
                           finished_at="2026-01-01T00:00:01Z",
                           suites=[SuiteResult(name="smoke", status="passed", checks=["ST-AUTH-REQUIRED"])])
        render_result(result, run_dir)
        for name in OUTPUTS:
            assert (run_dir / name).stat().st_size > 0, name


def test_a_remaining_past_int64_is_skipped_not_a_crash(tmp_path: Path) -> None:
    huge = {"task": "t", "observer": "o", "channel": "get", "send_ns": 1, "recv_ns": 2, "wall": 1.0,
            "http": 200, "extra": {"rl_remaining": 99999999999999999999999, "rl_group": "get"}}
    fine = {**huge, "extra": {"rl_remaining": 5, "rl_group": "get"}}
    (tmp_path / HISTORY_FILE).write_text("\n".join(json.dumps(x) for x in (huge, fine, huge)) + "\n")
    result = RunResult(run_id="r", target="http://t", started_at="2026-01-01T00:00:00Z",
                       suites=[SuiteResult(name="smoke", status="passed")])
    render_result(result, tmp_path)
    assert all((tmp_path / name).is_file() for name in OUTPUTS)
