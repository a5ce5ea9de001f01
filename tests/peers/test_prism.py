"""Prism (Stoplight's mock server) on contracts/openapi.yaml: it starts, and the contract suite
pointed at the mock ends with findings, not a crash. Loopback only; skipped with the reason when
scripts/install-prism.sh cannot install Prism (no npm, no registry)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.net.reference import stop_process
from tests.peers.contract_ops import operation_count

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ROOT / "contracts" / "openapi.yaml"
SUITE_BUDGET_S = 60.0


def _prism() -> Path:
    done = subprocess.run([str(ROOT / "scripts" / "install-prism.sh")], capture_output=True, text=True,
                          timeout=300)
    if done.returncode != 0:
        pytest.skip(f"Prism could not be installed: {done.stderr.strip()[-300:]}")
    return Path(done.stdout.strip().splitlines()[-1])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def prism() -> Iterator[tuple[str, list[str]]]:
    """`prism mock contracts/openapi.yaml` on a free loopback port: (URL, its startup output)."""
    binary = _prism()
    port = _free_port()
    process = subprocess.Popen([str(binary), "mock", str(CONTRACT), "-h", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    output: list[str] = []
    try:
        deadline = time.monotonic() + 60
        assert process.stdout is not None
        for line in process.stdout:  # Prism says when it listens; it prints nothing after that here
            output.append(line)
            if "Prism is listening" in line or time.monotonic() > deadline:
                break
        assert any("Prism is listening" in line for line in output), "".join(output)
        assert httpx.get(f"{url}/healthz", timeout=5).json() == {"status": "ok"}
        yield url, output
    finally:
        stop_process(process)


def test_prism_mock_starts_without_errors(prism: tuple[str, list[str]]) -> None:
    _, output = prism
    problems = [line for line in output if any(word in line.lower() for word in ("error", "fatal", "✖"))]
    assert problems == [], "".join(output)
    assert sum(1 for line in output if "http://127.0.0.1" in line and "info" in line) == operation_count()


def test_contract_suite_on_the_mock_reports_a_stateless_target(prism: tuple[str, list[str]],
                                                               tmp_path: Path) -> None:
    url, _ = prism
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "harness", "contract", "--base-url", url,
                           "--api-key", "inf_prism_mock_key", "--rate-window", "1", "--max-examples", "0",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=SUITE_BUDGET_S,
                          cwd=tmp_path)
    assert time.monotonic() - started < SUITE_BUDGET_S
    assert done.returncode == 1, done.stdout + done.stderr  # findings, not a crash (4) or usage (2)
    results = json.loads(next(tmp_path.glob("*/results.json")).read_text())
    findings = results["findings"]
    stateless = [f for f in findings if f["check"] == "CT-RESOURCE-AVAILABILITY"]
    assert stateless and "not found" in stateless[0]["message"], [f["message"][:200] for f in findings]
