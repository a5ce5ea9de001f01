"""contract_mix: the contract's generated requests at load, a sample of the answers judged
against the contract; clean on the reference server, LD-CONTRACT-UNDER-LOAD on a faulty one."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness.checks.documented import DocumentedAnswers
from harness.contract import contracts_dir, load_lifecycle, load_limits
from harness.findings import SuiteResult
from harness.net.reference import fresh_keys, reference_server
from harness.suites.load.contract_cases import CHANNELS, generate_cases
from harness.suites.load.run import LoadOptions, run_load


def test_the_cases_are_valid_requests_the_same_for_a_seed() -> None:
    cases = generate_cases(7, per_operation=3)
    assert cases == generate_cases(7, per_operation=3)
    assert {c["operation"] for c in cases} == set(CHANNELS)
    assert all(c["path"].startswith("/") and c["method"] == c["operation"].split()[0] for c in cases)


def test_documented_answers() -> None:
    documented = DocumentedAnswers(yaml.safe_load((contracts_dir() / "openapi.yaml").read_text()))
    assert 404 in documented.statuses("GET /tasks/{id}")
    teapot = documented.problem("GET /tasks/{id}", 418, "application/json", b"{}")
    assert teapot is not None and "does not document" in teapot
    bare = documented.problem("GET /tasks/{id}", 200, "application/json", b'{"id": "t"}')
    assert bare is not None and "success" in bare
    assert documented.problem("GET /nowhere", 200, "application/json", b"{}") is None


def _run(faults: list[str], folder: Path) -> SuiteResult:
    keys = fresh_keys(1)
    with reference_server(keys, rate_window=2.0, speed=50.0, faults=faults,
                          extra_args=["--heartbeat", "0.2"]) as server:
        limits = load_limits().model_copy(update={"window_seconds": 2.0})
        return run_load(server.url, keys, load_lifecycle(), limits, folder, LoadOptions(
            scenarios=["contract_mix"], users=4, duration_s=2.5, deadline_s=5.0, max_tasks=2000, seed=3))


@pytest.mark.parametrize("faults", [[], ["no-envelope"]], ids=["clean", "no-envelope"])
def test_contract_mix_is_clean_and_catches_a_broken_answer(tmp_path: Path, faults: list[str]) -> None:
    result = _run(faults, tmp_path)
    scenario = result.metrics["scenarios"]["contract_mix"]
    assert scenario["counts"].get("contract_checked", 0) > 10, scenario["counts"]
    found = [f for f in result.findings if f.check == "LD-CONTRACT-UNDER-LOAD"]
    if not faults:
        assert result.findings == [], [f.message for f in result.findings]
        assert "LD-CONTRACT-UNDER-LOAD" in result.checks
    else:
        assert found and found[0].evidence["violations"] > 0, [f.message for f in result.findings]
        assert "not what the contract documents" in found[0].message
