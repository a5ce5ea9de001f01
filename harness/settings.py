"""One typed settings object: command-line flags > environment > harness.toml > defaults."""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from harness.profile import REFERENCE, ROLES, AppRole, Profile

DEFAULT_TOML = Path("harness.toml")
# Billable runs the suites may create on a given target unless --max-tasks says otherwise.
DEFAULT_MAX_TASKS = 500
NO_KEY = "no API key: pass --api-key, or set HARNESS_API_KEYS or INFERENCE_API_KEY"


class ConfigError(Exception):
    """Bad configuration: the CLI exits with code 2."""


class Settings(BaseModel):
    """Everything a run needs to know about its target and its limits."""

    base_url: str | None = None
    api_keys: list[str] = Field(default_factory=list, repr=False)
    rate_window: float | None = Field(default=None, gt=0)
    # None: 500 against a given target (runs cost money), 20,000 on a self-started reference server.
    max_tasks: int | None = Field(default=None, ge=1)
    allow_hosts: list[str] = Field(default_factory=list)
    # Hosts besides the target's origin where upload URLs and file URIs may be fetched.
    allow_file_hosts: list[str] = Field(default_factory=list)
    out_dir: Path = Path("reports")
    speed: float = Field(default=10.0, gt=0)
    deadline: float = Field(default=60.0, gt=0)
    # [apps.<role>] tables: the target profile (harness/profile.py); None = the reference apps.
    apps: dict[str, AppRole] | None = None
    config: Path | None = None  # the settings file read, if any (its [thresholds] too)
    ca_bundle: Path | None = None  # a CA to trust besides the system's (staging set-ups)
    insecure: bool = False  # TLS not verified: said in every report's settings
    preflight_runs: int = 0  # billable runs the preflight made (set by the runner, reported)

    @model_validator(mode="after")
    def _tls(self) -> Settings:
        if self.insecure and self.ca_bundle is not None:
            raise ValueError("insecure and ca_bundle exclude each other (verify with the CA, or not at all)")
        return self

    @field_validator("ca_bundle")
    @classmethod
    def _ca(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"{value}: no such CA bundle file")
        return value

    @field_validator("apps")
    @classmethod
    def _roles(cls, value: dict[str, AppRole] | None) -> dict[str, AppRole] | None:
        unknown = sorted(set(value or {}) - set(ROLES))
        if unknown:
            raise ValueError(f"unknown app role {unknown[0]!r} (roles: {', '.join(ROLES)})")
        return value or None

    @property
    def profile(self) -> Profile:
        """The apps the suites use: the configured roles, else the reference server's apps."""
        return Profile(roles=dict(self.apps)) if self.apps else REFERENCE

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return check_url(value)

    def public(self) -> dict[str, Any]:
        """The settings as they may appear in a report: no keys, only how many there are."""
        data = self.model_dump(mode="json", exclude={"api_keys", "apps"})
        data["api_key_count"] = len(self.api_keys)
        # App names only: inputs and setups may carry a user's own tokens.
        data["apps"] = {role: app.app for role, app in self.profile.roles.items()}
        data["apps_builtin"] = self.profile.builtin
        return data


def check_url(value: str) -> str:
    """The URL without a trailing slash, or ValueError saying in one line what is wrong with it."""
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"{value!r} must start with http:// or https://")
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises on a port that is not a number in range
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a valid URL ({exc})") from None
    if not parts.hostname:
        raise ValueError(f"{value!r} names no host")
    if parts.query or parts.fragment:
        raise ValueError(f"{value!r}: the base URL takes no query or fragment")
    return value.rstrip("/")


def is_loopback(url: str) -> bool:
    """True for localhost and loopback addresses: targets suites may load without an allow-list."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "HARNESS_BASE_URL" in env:
        # Set but empty is an error, not "no target": an empty CI secret must not quietly test
        # the self-started reference server and pass.
        if not env["HARNESS_BASE_URL"].strip():
            raise ConfigError("HARNESS_BASE_URL is set but empty (unset it to test the self-started "
                              "reference server)")
        out["base_url"] = env["HARNESS_BASE_URL"].strip()
    keys = [k.strip() for k in env.get("HARNESS_API_KEYS", "").split(",") if k.strip()]
    if not keys and env.get("INFERENCE_API_KEY"):
        keys = [env["INFERENCE_API_KEY"].strip()]
    if keys:
        out["api_keys"] = keys
    return out


def _from_toml(path: Path, required: bool = False) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        if required:
            raise ConfigError(f"{path}: no such configuration file") from None
        return {}
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror or exc}") from exc
    section = dict(data.get("harness", data))
    if "apps" in data and "apps" not in section:  # [apps.<role>] beside a [harness] table
        section["apps"] = data["apps"]
    known = set(Settings.model_fields)
    unknown = sorted(k for k in section if k not in known and k != "thresholds")
    if unknown:
        raise ConfigError(f"{path}: unknown setting {unknown[0]!r}")
    return {k: v for k, v in section.items() if k in known}


def load_settings(flags: Mapping[str, Any], env: Mapping[str, str] | None = None,
                  toml_path: Path | None = None, required: bool = False) -> Settings:
    """Merge the sources; None-valued flags do not override anything.

    `required`: the file was named by the user (--config), so its absence is an error.
    """
    env = os.environ if env is None else env
    merged: dict[str, Any] = {}
    path = toml_path or DEFAULT_TOML
    from_file = _from_toml(path, required=required)
    merged.update(from_file)
    if from_file or required:
        merged["config"] = path
    merged.update(_from_env(env))
    merged.update({k: v for k, v in flags.items() if v is not None and v != []})
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        message = str(err["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"setting {where}: {message}") from exc
