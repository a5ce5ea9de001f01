"""Settings precedence: flags > environment > harness.toml > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.settings import (
    FILE_ONLY,
    ConfigError,
    env_name,
    flag_name,
    load_settings,
    setting_names,
    settings_env,
)


def test_defaults(tmp_path: Path) -> None:
    settings = load_settings({}, env={}, toml_path=tmp_path / "none.toml")
    assert settings.base_url is None and settings.api_keys == [] and settings.max_tasks is None


def test_precedence(tmp_path: Path) -> None:
    toml = tmp_path / "harness.toml"
    toml.write_text('[harness]\nbase_url = "http://toml:1"\nmax_tasks = 7\nrate_window = 3\n')
    env = {"HARNESS_BASE_URL": "http://env:2/", "INFERENCE_API_KEY": "inf_sdk"}
    settings = load_settings({"rate_window": 5.0, "base_url": None}, env=env, toml_path=toml)
    assert settings.base_url == "http://env:2"  # env beats toml, trailing slash dropped
    assert settings.max_tasks == 7 and settings.rate_window == 5.0
    assert settings.api_keys == ["inf_sdk"]
    flagged = load_settings({"api_keys": ["inf_a"], "base_url": "http://flag:3"}, env=env, toml_path=toml)
    assert flagged.api_keys == ["inf_a"] and flagged.base_url == "http://flag:3"


def test_harness_api_keys_beat_inference_api_key(tmp_path: Path) -> None:
    env = {"HARNESS_API_KEYS": "inf_1, inf_2", "INFERENCE_API_KEY": "inf_sdk"}
    assert load_settings({}, env=env, toml_path=tmp_path / "x").api_keys == ["inf_1", "inf_2"]


def test_public_settings_hide_keys(tmp_path: Path) -> None:
    settings = load_settings({"api_keys": ["inf_secret"]}, env={}, toml_path=tmp_path / "x")
    public = settings.public()
    assert "inf_secret" not in str(public) and public["api_key_count"] == 1
    assert "inf_secret" not in repr(settings)


@pytest.mark.parametrize(("text", "message"), [
    ("max_tasks = 0", "max_tasks"),
    ("colour = 'red'", "unknown setting 'colour'"),
    ("base_url = 'ftp://x'", "base_url"),
    ("this is not toml", "harness.toml"),
])
def test_bad_config_is_reported(tmp_path: Path, text: str, message: str) -> None:
    toml = tmp_path / "harness.toml"
    toml.write_text(text + "\n")
    with pytest.raises(ConfigError, match=message):
        load_settings({}, env={}, toml_path=toml)


def _parser_actions() -> dict[str, dict[str, str]]:
    """dest -> {option string: command} over `harness check` and every suite command."""
    import argparse

    from harness.cli import build_parser

    out: dict[str, dict[str, str]] = {}
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for command, parser in sub.choices.items():
        if command in ("serve", "init", "report", "check-history", "compare"):
            continue
        for action in parser._actions:
            for option in action.option_strings:
                out.setdefault(action.dest, {})[option] = command
    return out


def test_every_setting_has_one_name_for_flag_variable_and_file(tmp_path: Path) -> None:
    actions = _parser_actions()
    for name in setting_names():
        flag = flag_name(name)
        if flag is None:
            assert name in FILE_ONLY
            continue
        assert flag in actions.get(name, {}), f"setting {name}: no flag {flag} with dest {name}"
    # And every flag of a run command is a setting (or one of the few command-only switches).
    commands_only = {"help", "version", "worker", "command"}
    strays = [dest for dest in actions if dest not in setting_names() and dest not in commands_only]
    assert strays == []


def test_suite_options_from_every_source(tmp_path: Path) -> None:
    toml = tmp_path / "harness.toml"
    toml.write_text('[load]\nusers = 3\nduration = "2m"\nscenarios = ["run_wait"]\n'
                    '[ratelimit]\ngroups = ["get"]\n[lifecycle]\nclients = 2\n'
                    '[contract]\nmax_examples = 0\n')
    from_file = load_settings({}, env={}, toml_path=toml)
    assert (from_file.users, from_file.duration, from_file.scenarios) == (3, 120.0, ["run_wait"])
    assert from_file.groups == ["get"] and from_file.clients == 2 and from_file.max_examples == 0
    env = {"HARNESS_USERS": "5", "HARNESS_DURATION": "90s", "HARNESS_ARRIVAL_RATE": "300/m",
           "HARNESS_LIMIT_GROUPS": "get,upload", "HARNESS_MAX_TASKS": "9", "HARNESS_DISCOVER": "1"}
    from_env = load_settings({}, env=env, toml_path=toml)
    assert (from_env.users, from_env.duration, from_env.arrival_rate) == (5, 90.0, 5.0)
    assert from_env.limit_groups == ["get", "upload"] and from_env.max_tasks == 9 and from_env.discover
    from_flags = load_settings({"users": 7, "groups": ["run"]}, env=env, toml_path=toml)
    assert from_flags.users == 7 and from_flags.groups == ["run"] and from_flags.duration == 90.0


def test_the_child_processes_read_back_what_the_parent_passes(tmp_path: Path) -> None:
    parent = load_settings({"api_keys": ["inf_k1", "inf_k2"], "allow_hosts": ["a.example"],
                            "insecure": True, "thresholds": ["errors<1%", "run.p95<2s"]},
                           env={}, toml_path=tmp_path / "none.toml")
    names = ("api_keys", "allow_hosts", "insecure", "thresholds", "ca_bundle")
    child = load_settings({}, env=settings_env(parent, names), toml_path=tmp_path / "none.toml")
    for name in names:
        assert getattr(child, name) == getattr(parent, name)


def test_the_config_file_may_come_from_the_environment(tmp_path: Path) -> None:
    toml = tmp_path / "ci.toml"
    toml.write_text("max_tasks = 4\n[apps.quick]\napp = 'acme/echo'\ninput = { message = 'hi' }\n")
    settings = load_settings({}, env={"HARNESS_CONFIG": str(toml)})
    assert settings.max_tasks == 4 and settings.profile.get("quick") is not None
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_settings({}, env={"HARNESS_CONFIG": str(tmp_path / "gone.toml")})


@pytest.mark.parametrize(("env", "message"), [
    ({"HARNESS_USERS": "many"}, r"users \(from HARNESS_USERS\)"),
    ({"HARNESS_DURATION": "soon"}, r"duration \(from HARNESS_DURATION\)"),
    ({"HARNESS_LIMIT_GROUPS": "run,gets"}, r"limit_groups.1 \(from HARNESS_LIMIT_GROUPS\)"),
    ({"HARNESS_SCENARIOS": "mixd"}, r"scenarios \(from HARNESS_SCENARIOS\)"),
    ({"HARNESS_THRESHOLDS": "get_task.p95<<1"}, r"thresholds \(from HARNESS_THRESHOLDS\)"),
    ({"HARNESS_APPS": "{not json"}, "HARNESS_APPS: not JSON"),
])
def test_a_bad_variable_is_named(tmp_path: Path, env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings({}, env=env, toml_path=tmp_path / "none.toml")


@pytest.mark.parametrize(("text", "message"), [
    ("api_keys = ['inf_x']", "keys never go in a settings file"),
    ("[load]\nclients = 3", r"\[load\] has no setting 'clients'"),
    ("[load]\nusers = 'x'", r"users \(from .*harness.toml\)"),
])
def test_bad_suite_tables_and_keys_in_files(tmp_path: Path, text: str, message: str) -> None:
    toml = tmp_path / "harness.toml"
    toml.write_text(text + "\n")
    with pytest.raises(ConfigError, match=message):
        load_settings({}, env={}, toml_path=toml)


def test_docs_list_every_setting_with_its_flag_and_variable() -> None:
    text = (Path(__file__).resolve().parents[1] / "docs" / "configuration.md").read_text()
    for name in setting_names():
        flag = flag_name(name)
        row = f"| `{name}` | " + (f"`{flag}`" if flag else "—") + f" | `{env_name(name)}` |"
        assert row in text, f"docs/configuration.md has no row for {name}"
