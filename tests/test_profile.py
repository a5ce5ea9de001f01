"""The target profile: a target whose apps have other names, checked with and without one."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.net.reference import ReferenceServer, fresh_keys, reference_server
from harness.profile import REFERENCE, ROLES, AppRole, with_file
from harness.settings import ConfigError, load_settings
from tests.test_cli import harness

RENAMES = {"acme/echo": "infsh/echo", "acme/sleep": "infsh/sleep", "acme/fail": "infsh/fail",
           "acme/thumbnail": "infsh/image", "acme/flux": "infsh/flux",
           "acme/caption-flow": "infsh/echo-image-flow"}
PROFILE = '''
[apps.quick]
app = "acme/echo@1.2.0"
input = { message = "hello" }
expect_output = { message = "hello" }
[apps.slow]
app = "acme/sleep"
input = { seconds = 600 }
[apps.failing]
app = "acme/fail"
input = { message = "boom" }
[apps.invalid]
app = "acme/echo"
input = { message = 1 }
[apps.file]
app = "acme/thumbnail"
input = { image = "$FILE" }
[apps.setup]
app = "acme/flux"
setup = { model = "schnell" }
input = { prompt = "a lighthouse" }
[apps.flow]
app = "acme/caption-flow"
input = { message = "hi" }
infra = "private_first"
'''


@pytest.fixture(scope="module")
def renamed() -> Iterator[ReferenceServer]:
    """A reference server whose apps answer only to acme/* names."""
    args = ["--heartbeat", "0.2"]
    for new, old in RENAMES.items():
        args += ["--app-name", f"{new}={old}"]
    with reference_server(fresh_keys(2), rate_window=2.0, speed=20.0, extra_args=args) as running:
        yield running


def _check(server: ReferenceServer, tmp_path: Path, *extra: str) -> tuple[int, str, Path | None]:
    out = tmp_path / "out"
    result = harness("check", "--base-url", server.url, "--api-key", server.keys[0], "--api-key",
                     server.keys[1], "--rate-window", "2", "--max-examples", "2", "--duration", "2s",
                     "--tasks", "8", "--max-tasks", "5000", "--out", str(out), *extra, cwd=tmp_path,
                     timeout=240)
    runs = list(out.iterdir()) if out.exists() else []
    return result.returncode, result.stdout + result.stderr, runs[0] if runs else None


def test_with_a_profile_every_suite_runs_the_targets_own_apps(renamed: ReferenceServer,
                                                               tmp_path: Path) -> None:
    (tmp_path / "profile.toml").write_text(PROFILE)
    code, output, run_dir = _check(renamed, tmp_path, "--config", str(tmp_path / "profile.toml"))
    assert code == 0, output
    assert run_dir is not None
    results = json.loads((run_dir / "results.json").read_text())
    assert results["settings"]["apps"]["quick"] == "acme/echo@1.2.0"
    # The profile maps no agent: the agents suite is skipped with the reason, never passed.
    agents = results["suites"].pop("agents")
    assert agents["status"] == "skipped" and "'agent' role" in agents["skipped"]["AG-STOP"]
    assert all(s["status"] == "passed" for s in results["suites"].values()), results["suites"]
    # Every smoke check ran but the agent's one conversation (no agent role either).
    assert list(results["suites"]["smoke"]["skipped"]) == ["ST-AGENT-REPLY"]
    created = {name: s["metrics"].get("tasks_created", 1) for name, s in results["suites"].items()}
    assert all(int(n) > 0 for n in created.values()), created


def test_without_a_profile_the_missing_apps_are_named_and_nothing_runs(renamed: ReferenceServer,
                                                                       tmp_path: Path) -> None:
    code, output, run_dir = _check(renamed, tmp_path)
    assert code == 2, output
    for name in ("infsh/echo", "infsh/fail", "infsh/sleep", "infsh/flux", "infsh/echo-image-flow"):
        assert f"no app '{name}'" in output
    assert "[apps.<role>]" in output and run_dir is None


def test_an_unmapped_role_skips_its_checks_with_the_reason(renamed: ReferenceServer, tmp_path: Path) -> None:
    only_quick = PROFILE.split("[apps.slow]")[0]
    (tmp_path / "quick.toml").write_text(only_quick)
    result = harness("smoke", "--base-url", renamed.url, "--api-key", renamed.keys[0], "--api-key",
                     renamed.keys[1], "--config", str(tmp_path / "quick.toml"), "--out",
                     str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    (run_dir,) = (tmp_path / "out").iterdir()
    smoke = json.loads((run_dir / "results.json").read_text())["suites"]["smoke"]
    assert smoke["status"] == "passed" and "ST-RUN-COMPLETES" in smoke["checks"]
    for check, role in (("ST-CANCEL", "slow"), ("ST-FAIL-ERROR", "failing"), ("ST-UPLOAD-ROUNDTRIP", "file"),
                        ("ST-INVALID-INPUT", "invalid")):
        assert f"no {role!r} app" in smoke["skipped"][check]
        assert check not in smoke["checks"]


def test_expect_output_is_judged(renamed: ReferenceServer, tmp_path: Path) -> None:
    wrong = PROFILE.split("[apps.slow]")[0].replace('expect_output = { message = "hello" }',
                                                    'expect_output = { message = "bye" }')
    (tmp_path / "wrong.toml").write_text(wrong)
    result = harness("smoke", "--base-url", renamed.url, "--api-key", renamed.keys[0], "--config",
                     str(tmp_path / "wrong.toml"), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 1 and "ST-RUN-COMPLETES" in result.stdout
    assert "expect_output" in result.stdout


def test_profile_tables_are_validated(tmp_path: Path) -> None:
    bad = tmp_path / "h.toml"
    bad.write_text('[apps.quik]\napp = "a/b"\n')
    with pytest.raises(ConfigError, match="unknown app role 'quik'"):
        load_settings({}, env={}, toml_path=bad)
    bad.write_text('[apps.quick]\napp = "a/b"\nimput = {}\n')
    with pytest.raises(ConfigError, match="imput"):
        load_settings({}, env={}, toml_path=bad)
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_settings({}, env={}, toml_path=tmp_path / "missing.toml", required=True)
    assert load_settings({}, env={}, toml_path=tmp_path / "missing.toml").profile is REFERENCE


def test_file_placeholder_and_run_body() -> None:
    role = AppRole(app="acme/thumb", input={"image": "$FILE", "opts": ["$FILE", 1]}, infra="private")
    assert role.takes_file
    uri = "https://f/1"
    assert role.body(file_uri=uri) == {"app": "acme/thumb", "infra": "private",
                                       "input": {"image": uri, "opts": [uri, 1]}}
    assert with_file({"a": "$FILE"}, None) == {"a": "$FILE"}


def test_init_writes_a_commented_file_that_becomes_a_full_profile(tmp_path: Path) -> None:
    target = tmp_path / "harness.toml"
    result = harness("init", str(target), "--base-url", "https://api.acme.dev", cwd=tmp_path)
    assert result.returncode == 0 and target.is_file()
    assert tomllib.loads(target.read_text()) == {}  # everything commented out
    again = harness("init", str(target), cwd=tmp_path)
    assert again.returncode == 2 and "exists" in again.stderr
    keys = "app|input|setup|agent_config|base_url|allow_hosts|get_task|errors|scenarios|users|duration|" \
           "groups|limit_groups|tasks|max_examples|max_tasks|deadline|rate_window"
    uncommented = re.sub(rf"^# ?(?=\[|(?:{keys}) )", "", target.read_text(), flags=re.M)
    settings = load_settings({}, env={}, toml_path=_write(tmp_path / "u.toml", uncommented))
    assert set(settings.profile.roles) == set(ROLES) and settings.base_url == "https://api.acme.dev"
    assert settings.limit_groups == ["get", "upload"] and settings.max_examples == 20
    assert settings.thresholds == ["get_task.p95<200ms", "errors<0.1%"]


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
