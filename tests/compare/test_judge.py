"""`harness compare`: noise-aware latency verdicts, throughput gates, check and finding changes."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from harness.compare.gates import DEFAULT_GATES, GateError, parse_gate, parse_gates
from harness.compare.judge import compare
from harness.findings import Finding, RunResult, SuiteResult
from harness.report.results import write_results
from harness.suites.load.endpoints import endpoint_rows
from harness.suites.load.hdr import HdrSet

GATES = parse_gates(list(DEFAULT_GATES))


def _run(run_id: str, samples_ms: list[float], rps_scale: float = 1.0,
         findings: tuple[str, ...] = ()) -> RunResult:
    hdr = HdrSet()
    for value in samples_ms:
        hdr.record_ms("get_task", value)
    duration = len(samples_ms) / (100.0 * rps_scale)
    rows = endpoint_rows({"get_task": len(samples_ms)}, {}, hdr.summaries(), duration)
    load = SuiteResult(name="load", status="failed" if findings else "passed",
                       checks=["LD-THRESHOLD", "LD-UNEXPECTED-ERRORS"],
                       metrics={"scenarios": {"mixed": {"endpoints": rows, "hdr": hdr.encode()}}},
                       findings=[Finding(check=c, suite="load", message="x") for c in findings])
    return RunResult(run_id=run_id, target="http://127.0.0.1:1", started_at="2026-12-07T00:00:00Z",
                     suites=[load])


def _samples(seed: int, n: int, scale: float = 1.0) -> list[float]:
    rng = random.Random(seed)
    return [rng.lognormvariate(0.0, 0.5) * 2.0 * scale for _ in range(n)]


def test_the_same_distribution_is_never_a_regression() -> None:
    # Twenty pairs of runs drawn from one distribution: the noise alone never trips the 10 % gate.
    for seed in range(20):
        found = compare(_run("a", _samples(seed, 2000)), _run("b", _samples(seed + 100, 2000)), GATES)
        assert not found.regressed, [s for s in found.regressions]


def test_a_real_shift_is_a_regression_and_the_reverse_an_improvement() -> None:
    base, slow = _run("a", _samples(1, 3000)), _run("b", _samples(2, 3000, scale=1.4))
    found = compare(base, slow, GATES)
    regressed = {(s.endpoint, s.stat) for s in found.regressions}
    assert ("get_task", "p95") in regressed and found.regressed
    p95 = next(s for s in found.stats if s.stat == "p95")
    assert p95.how == "interval" and p95.change is not None and 0.25 < p95.change < 0.55
    back = compare(slow, base, GATES)
    assert not back.regressed and next(s for s in back.stats if s.stat == "p95").verdict == "improved"


def test_too_few_samples_give_no_verdict() -> None:
    found = compare(_run("a", _samples(1, 60)), _run("b", _samples(2, 60, scale=3.0)), GATES)
    p99 = next(s for s in found.stats if s.stat == "p99")
    assert p99.verdict == "insufficient data" and not any(s.stat == "p99" for s in found.regressions)


def test_throughput_gate_and_broken_checks() -> None:
    base = _run("a", _samples(1, 2000))
    slower = _run("b", _samples(1, 2000), rps_scale=0.8)
    rps = next(s for s in compare(base, slower, GATES).stats if s.stat == "rps")
    assert rps.verdict == "regressed" and rps.gate == "rps=-10%"
    assert compare(base, slower, parse_gates(["rps=-25%"])).regressed is False
    broken = compare(base, _run("b", _samples(1, 2000), findings=("LD-UNEXPECTED-ERRORS",)), GATES)
    assert [(c.check, c.baseline, c.new) for c in broken.broken_checks] == [
        ("LD-UNEXPECTED-ERRORS", "passed", "failed")]
    assert broken.new_findings == {"LD-UNEXPECTED-ERRORS": 1} and broken.regressed


def test_point_numbers_when_a_run_has_no_histograms() -> None:
    base, new = _run("a", _samples(1, 2000)), _run("b", _samples(2, 2000, scale=1.5))
    for run in (base, new):
        del run.suites[0].metrics["scenarios"]["mixed"]["hdr"]
    p95 = next(s for s in compare(base, new, GATES).stats if s.stat == "p95")
    assert p95.how == "point" and p95.verdict == "regressed"


@pytest.mark.parametrize("text", ["p95", "p95=10", "p42=10%", "p95=-10%", "latency=5%"])
def test_bad_gates(text: str) -> None:
    with pytest.raises(GateError):
        parse_gate(text)


def test_gates_read_both_ways() -> None:
    assert parse_gate("rps=-5%").tolerance == 0.05 and parse_gate("rps=5%").text == "rps=-5%"
    assert parse_gate("p95=12.5%").tolerance == 0.125


def _folder(tmp_path: Path, result: RunResult) -> Path:
    folder = tmp_path / result.run_id
    write_results(result, folder, [])
    return folder


def _harness(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True,
                          timeout=60)


def test_the_compare_command(tmp_path: Path) -> None:
    base = _folder(tmp_path, _run("base", _samples(1, 3000)))
    same = _folder(tmp_path, _run("same", _samples(2, 3000)))
    slow = _folder(tmp_path, _run("slow", _samples(3, 3000, scale=1.4)))
    clean = _harness("compare", str(base), str(same))
    assert clean.returncode == 0 and "no regression" in clean.stdout, clean.stderr
    worse = _harness("compare", str(base), str(slow), "--out", str(tmp_path / "cmp"))
    assert worse.returncode == 1, worse.stdout + worse.stderr
    text = (tmp_path / "cmp" / "compare.md").read_text()
    assert "### Regressions" in text and "| `mixed` | `get_task` | p95 |" in text
    data = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert data["regressed"] is True and data["baseline_run"] == "base"
    assert _harness("compare", str(base), str(slow), "--max-regression", "p95=80%",
                    "--max-regression", "p99=80%").returncode == 0
    bad_gate = _harness("compare", str(base), str(slow), "--max-regression", "p95")
    assert bad_gate.returncode == 2 and "STAT=N%" in bad_gate.stderr
    not_a_run = _harness("compare", str(tmp_path), str(slow))
    assert not_a_run.returncode == 2 and "not a run folder" in not_a_run.stderr


def test_a_run_from_before_the_tables_is_rebuilt_from_its_metrics() -> None:
    base, new = _run("a", _samples(1, 2000)), _run("b", _samples(2, 2000, scale=1.5))
    for run in (base, new):
        phase = run.suites[0].metrics["scenarios"]["mixed"]
        row = phase.pop("endpoints")[0]
        del phase["hdr"]
        phase.update({"by_request": {"get_task": {"requests": row["requests"], "errors": 0}},
                      "latency_ms": {"get_task": {k: row[k] for k in ("p50", "p90", "p95", "p99", "max")}},
                      "duration_s": 20.0})
    found = compare(base, new, GATES)
    assert {(s.stat, s.verdict) for s in found.stats if s.stat in ("p95", "rps")} == {
        ("p95", "regressed"), ("rps", "unchanged")}
