"""The composite action (action.yml) and the example workflow around it cannot rot: the action's
steps run here with the inputs the example gives it, against a reference server."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from harness.net.reference import ReferenceServer
from tests.conftest import StartServer
from tests.files import folder_texts

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / "docs" / "examples" / "harness-check.yml"
ACTION = ROOT / "action.yml"


def _workflow_steps() -> dict[str, dict[str, Any]]:
    doc = yaml.safe_load(WORKFLOW.read_text())
    (job,) = doc["jobs"].values()
    return {step.get("name", step.get("uses", "")): step for step in job["steps"]}


def _action() -> dict[str, Any]:
    return yaml.safe_load(ACTION.read_text())


def _expand(text: str, context: dict[str, dict[str, str]]) -> str:
    """The ${{ ... }} expressions GitHub fills in before the shell or the action sees them."""
    def value(match: re.Match[str]) -> str:
        expr = match.group(1).strip()
        scope, _, name = expr.partition(".")
        if scope == "steps":
            name = name.removeprefix("check.outputs.")
            scope = "outputs"
        assert scope in context, f"unexpected expression {expr}"
        return context[scope].get(name, "")
    return re.sub(r"\$\{\{(.*?)\}\}", value, text)


def _inputs(secrets: dict[str, str], **override: str) -> dict[str, str]:
    """The action's inputs as the example workflow passes them (defaults for the rest)."""
    step = _workflow_steps()["Check the staging API"]
    given = {k: _expand(str(v), {"secrets": secrets}) for k, v in step["with"].items()}
    defaults = {k: str(v.get("default", "")) for k, v in _action()["inputs"].items()}
    return {**defaults, **given, **override}


def _run_action(inputs: dict[str, str], work: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, str],
                                                              str]:
    steps = {step["name"]: step for step in _action()["runs"]["steps"]}
    install = steps["Install"]["run"]
    assert 'pip" install -q "$GITHUB_ACTION_PATH"' in install and " -e " not in install, \
        "the action installs the package as a user would (make test-wheel proves the wheel)"
    output_file, summary = work / "github_output", work / "step_summary.md"
    output_file.write_text("")
    check = steps["Check the target"]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(work), "GITHUB_OUTPUT": str(output_file),
           "GITHUB_STEP_SUMMARY": str(summary), "HARNESS_BIN": str(_harness_bin(work))}
    env.update({k: _expand(str(v), {"inputs": inputs}) for k, v in check["env"].items()})
    done = subprocess.run(["bash", "-e", "-c", check["run"]], cwd=work, env=env, capture_output=True,
                          text=True, timeout=240)
    outputs = dict(line.partition("=")[::2] for line in output_file.read_text().splitlines())
    # The action's outputs, as its `outputs:` block maps them.
    mapped = {name: _expand(str(spec["value"]), {"outputs": outputs})
              for name, spec in _action()["outputs"].items()}
    return done, mapped, summary.read_text() if summary.exists() else ""


def _harness_bin(work: Path) -> Path:
    """This harness as the installed `harness` command (the Install step is the wheel test's)."""
    path = work / "bin" / "harness"
    path.parent.mkdir(exist_ok=True)
    path.write_text(f"#!/bin/sh\nexec {sys.executable} -m harness \"$@\"\n")
    path.chmod(0o755)
    return path


def _after(outputs: dict[str, str], work: Path) -> list[tuple[str, int]]:
    """The example's own run: steps after the action (their `if:` judged), and their exit codes."""
    codes = []
    for name, step in _workflow_steps().items():
        if "run" not in step:
            continue
        condition = re.fullmatch(r"steps\.check\.outputs\.([\w-]+) == '(\w*)'", step.get("if", ""))
        assert condition is not None or "if" not in step, f"unexpected condition in {name}"
        if condition is not None and outputs.get(condition[1]) != condition[2]:
            continue
        done = subprocess.run(["bash", "-e", "-c", step["run"]], cwd=work, capture_output=True, text=True,
                              timeout=30)
        codes.append((name, done.returncode))
    return codes


def test_the_action_checks_a_target_with_the_profile_and_publishes_its_summary(
        tmp_path: Path, server: ReferenceServer) -> None:
    secrets = {"STAGING_URL": server.url, "STAGING_API_KEY": server.keys[0],
               "STAGING_SECOND_API_KEY": server.keys[1]}
    # A profile in the repository root (the reference apps under their own names): it is used.
    (tmp_path / "harness.toml").write_text("[apps.quick]\napp = 'infsh/echo'\ninput = { message = 'ci' }\n")
    done, outputs, summary = _run_action(_inputs(secrets, args="--suite smoke --rate-window 2"), tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert outputs["exit-code"] == "0" and outputs["run-dir"].startswith("reports/")
    assert "smoke" in summary and "passed" in summary
    run_dir = tmp_path / outputs["run-dir"]
    assert (run_dir / "junit.xml").is_file()
    assert json.loads((run_dir / "results.json").read_text())["settings"]["apps"] == {"quick": "infsh/echo"}
    assert _after(outputs, tmp_path) == []  # no findings: "Fail on findings" does not run
    assert not any(k in text for text in folder_texts(tmp_path / "reports").values() for k in server.keys), \
        "a key leaked into the uploaded folder"


def test_findings_are_left_to_the_workflow_which_fails_after_publishing(tmp_path: Path,
                                                                       start_server: StartServer) -> None:
    with start_server(faults=["upload-bytes-altered"]) as srv:
        secrets = {"STAGING_URL": srv.url, "STAGING_API_KEY": srv.keys[0],
                   "STAGING_SECOND_API_KEY": srv.keys[1]}
        done, outputs, summary = _run_action(_inputs(secrets, args="--suite smoke --rate-window 2"), tmp_path)
    assert done.returncode == 0 and outputs["exit-code"] == "1", done.stdout + done.stderr
    assert "ST-UPLOAD-ROUNDTRIP" in summary
    assert _after(outputs, tmp_path) == [("Fail on findings", 1)]


def test_the_action_fails_when_the_target_secret_is_empty(tmp_path: Path) -> None:
    done, outputs, _ = _run_action(_inputs({}), tmp_path)
    assert done.returncode == 2 and "is empty" in done.stdout
    assert outputs["exit-code"] == "" and not (tmp_path / "reports").exists()
