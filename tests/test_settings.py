"""Settings precedence: flags > environment > harness.toml > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.settings import ConfigError, load_settings


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
