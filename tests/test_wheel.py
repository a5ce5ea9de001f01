"""The built wheel on its own: a fresh virtual environment serves and checks with nothing else.

Slow (it installs every dependency into a new environment), so `make test` leaves it out and
`make test-wheel` (run by .ci/run) runs it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import __version__
from harness.net.reference import fresh_keys, reference_server

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.wheel


def _run(cmd: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.timeout(900)
def test_the_wheel_alone_serves_and_passes_smoke(tmp_path: Path) -> None:
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"),
                  str(ROOT)], tmp_path, 300)
    assert built.returncode == 0, built.stderr
    wheel = next((tmp_path / "dist").glob("*.whl"))
    _run([sys.executable, "-m", "venv", str(tmp_path / "venv")], tmp_path, 120).check_returncode()
    python = str(tmp_path / "venv" / "bin" / "python")
    installed = _run([python, "-m", "pip", "install", "-q", str(wheel)], tmp_path, 600)
    assert installed.returncode == 0, installed.stderr[-2000:]
    where = _run([python, "-c", "import harness, sys; print(harness.__file__)"], tmp_path, 60)
    assert str(tmp_path / "venv") in where.stdout, "the test must run the installed package"
    harness = str(tmp_path / "venv" / "bin" / "harness")
    version = _run([harness, "--version"], tmp_path, 60)
    assert version.stdout.strip() == f"harness {__version__}"
    keys = fresh_keys(2)
    with reference_server(keys, rate_window=2.0, speed=20.0, python=python, cwd=str(tmp_path)) as srv:
        smoke = _run([harness, "check", "--suite", "smoke", "--base-url", srv.url, "--api-key", keys[0],
                      "--api-key", keys[1], "--out", str(tmp_path / "runs")], tmp_path, 300)
    assert smoke.returncode == 0, smoke.stdout[-2000:] + smoke.stderr[-2000:]
    assert "smoke: passed" in smoke.stdout
    run_dirs = list((tmp_path / "runs").iterdir())
    assert len(run_dirs) == 1 and (run_dirs[0] / "index.html").is_file()
