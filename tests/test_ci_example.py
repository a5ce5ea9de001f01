"""docs/examples/harness-check.yml cannot rot: its run: steps run here against a reference server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from harness.net.reference import ReferenceServer
from tests.files import folder_texts

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / "docs" / "examples" / "harness-check.yml"


def _steps() -> dict[str, dict[str, Any]]:
    doc = yaml.safe_load(WORKFLOW.read_text())
    (job,) = doc["jobs"].values()
    return {step.get("name", step.get("uses", "")): step for step in job["steps"]}


def _expand(script: str, outputs: dict[str, str], secrets: dict[str, str]) -> str:
    """The ${{ ... }} expressions GitHub would fill in before the shell sees the script."""
    def value(match: re.Match[str]) -> str:
        expr = match.group(1).strip()
        if expr.startswith("secrets."):
            return secrets.get(expr.removeprefix("secrets."), "")
        if expr.startswith("steps.check.outputs."):
            return outputs.get(expr.removeprefix("steps.check.outputs."), "")
        raise AssertionError(f"unexpected expression {expr}")
    return re.sub(r"\$\{\{(.*?)\}\}", value, script)


def _run_step(step: dict[str, Any], cwd: Path, outputs: dict[str, str], secrets: dict[str, str],
              summary: Path) -> subprocess.CompletedProcess[str]:
    output_file = cwd / "github_output"
    output_file.write_text("")
    env = {"PATH": f"{cwd / '.venv' / 'bin'}:/usr/bin:/bin", "HOME": str(cwd),
           "GITHUB_OUTPUT": str(output_file), "GITHUB_STEP_SUMMARY": str(summary)}
    env.update({k: _expand(str(v), outputs, secrets) for k, v in step.get("env", {}).items()})
    done = subprocess.run(["bash", "-e", "-c", _expand(step["run"], outputs, secrets)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=240)
    for line in output_file.read_text().splitlines():
        name, _, value = line.partition("=")
        outputs[name] = value
    return done


def _workspace(tmp_path: Path) -> Path:
    """A checkout whose .venv/bin/harness is this harness (the Install step is the wheel test's)."""
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "harness").write_text(f"#!/bin/sh\nexec {sys.executable} -m harness \"$@\"\n")
    (bin_dir / "harness").chmod(0o755)
    return tmp_path


def test_the_example_workflow_checks_a_target_and_publishes_its_report(tmp_path: Path,
                                                                       server: ReferenceServer) -> None:
    steps = _steps()
    assert "pip install -q \"inference-harness @" in steps["Install"]["run"] and " -e " not in \
        steps["Install"]["run"], "the example installs the package as a user would"
    work = _workspace(tmp_path)
    secrets = {"STAGING_URL": server.url, "STAGING_API_KEY": server.keys[0],
               "STAGING_SECOND_API_KEY": server.keys[1]}
    check = dict(steps["Check the staging API"])
    # Only the smoke suite, to keep the test short; every other word of the step runs as written.
    check["run"] = check["run"].replace("harness check $config", "harness check --suite smoke $config")
    outputs: dict[str, str] = {}
    summary = tmp_path / "step_summary.md"
    done = _run_step(check, work, outputs, secrets, summary)
    assert done.returncode == 0, done.stdout + done.stderr
    assert outputs["exit_code"] == "0" and outputs["run_dir"].startswith("reports/")
    done = _run_step(steps["Step summary"], work, outputs, secrets, summary)
    assert done.returncode == 0 and "smoke" in summary.read_text()
    assert (work / outputs["run_dir"] / "junit.xml").is_file()
    assert not any(k in text for text in folder_texts(work / "reports").values()
                   for k in server.keys), "a key leaked into the uploaded folder"


def test_the_example_fails_when_the_target_secret_is_empty(tmp_path: Path) -> None:
    work = _workspace(tmp_path)
    outputs: dict[str, str] = {}
    done = _run_step(_steps()["Check the staging API"], work, outputs, {}, tmp_path / "s.md")
    assert done.returncode == 2 and "is empty" in done.stdout
    assert not os.path.exists(work / "reports")
