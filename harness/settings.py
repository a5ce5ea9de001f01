"""One settings model for every source: command-line flags > HARNESS_* variables > the file > defaults.

Every setting has one name. `users` is `--users` on the command line, `HARNESS_USERS` in the
environment and `users = 20` in harness.toml (top level, under `[harness]`, or under the table of
the suite it belongs to, e.g. `[load]`). A list's flag is its name in the singular and repeatable:
`--allow-host A --allow-host B`, `HARNESS_ALLOW_HOSTS=A,B`, `allow_hosts = ["A", "B"]`.
The load processes and `locust -f locustfiles/...` read the same model (`load_settings`).
"""

from __future__ import annotations

import ipaddress
import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from harness.checks.thresholds import ThresholdError, thresholds_from_value
from harness.profile import REFERENCE, ROLES, AppRole, Profile
from harness.units import parse_duration, parse_rate

DEFAULT_TOML = Path("harness.toml")
ENV_PREFIX = "HARNESS_"
# The official SDKs' variable: a key read anywhere falls back to it.
SDK_KEY_VARIABLE = "INFERENCE_API_KEY"
# Billable runs the suites may create on a given target unless --max-tasks says otherwise.
DEFAULT_MAX_TASKS = 500
NO_KEY = "no API key: pass --api-key, or set HARNESS_API_KEYS or INFERENCE_API_KEY"
RATE_GROUPS = ("run", "get", "upload")
# Suite tables a file may group settings under; a key there must belong to that suite.
SUITE_TABLES = ("contract", "lifecycle", "load", "ratelimit")


class ConfigError(Exception):
    """Bad configuration: the CLI exits with code 2."""


def _suite(name: str, default: Any, text: str, ge: float | None = None, gt: float | None = None) -> Any:
    """A field of one suite's options (a list default is copied for each instance)."""
    extra: dict[str, Any] = {"suite": name}
    if isinstance(default, list):
        return Field(default_factory=lambda: list(default), description=text, json_schema_extra=extra)
    return Field(default, description=text, json_schema_extra=extra, ge=ge, gt=gt)


class Settings(BaseModel):
    """Everything a run needs to know: its target, its limits, and each suite's options."""

    # The target and the run.
    base_url: str | None = Field(default=None, description="target API; none: start a reference server on a "
                                 "free loopback port")
    api_keys: list[str] = Field(default_factory=list, repr=False, description="keys; the first is "
                                "primary, the second is used for isolation checks (also INFERENCE_API_KEY)")
    config: Path | None = Field(default=None, description="the settings file (default ./harness.toml "
                                "when it exists)")
    rate_window: float | None = Field(default=None, gt=0, description="the target's rate-limit window "
                                      "in seconds when it is not the contract's 60 (a self-started "
                                      "server uses 2)")
    # None: 500 against a given target (runs cost money), 20,000 on a self-started reference server.
    max_tasks: int | None = Field(default=None, ge=1, description="budget of billable runs the suites "
                                  "may create (default 500; 20,000 on a self-started reference server)")
    allow_hosts: list[str] = Field(default_factory=list, description="non-loopback hosts that "
                                   "task-creating suites may target")
    allow_file_hosts: list[str] = Field(default_factory=list, description="hosts besides the target's "
                                        "where its upload URLs and file URIs may be fetched")
    ca_bundle: Path | None = Field(default=None, description="PEM file of a CA to trust for the target's TLS")
    insecure: bool = Field(default=False, description="do not verify the target's TLS certificate (said in "
                           "every report's settings)")
    deadline: float = Field(default=60.0, gt=0, description="seconds a task may take before it counts "
                            "as lost")
    suite_deadline: float = Field(default=3600.0, gt=0, description="longest a suite may take (60, 20m, "
                                  "1h); past it the suite stops with a <ID>-DEADLINE finding")
    run_deadline: float = Field(default=7200.0, gt=0, description="longest the whole run may take, "
                                "preflight included; suites it leaves no time for are skipped")
    out_dir: Path = Field(default=Path("reports"), description="parent folder of run folders")
    speed: float = Field(default=10.0, gt=0, description="speed of a self-started reference server")
    faults: list[str] = Field(default_factory=list, description="named faults of a self-started "
                              "reference server (to see the harness catch them)")
    lifecycle: Path | None = Field(default=None, description="lifecycle contract (default "
                                   "contracts/lifecycle.yaml; contracts/lifecycle-docs.yaml: the "
                                   "documented table)")
    suites: list[str] = Field(default_factory=list, description="`harness check` runs only these "
                              "suites (default: all)")
    fail_on: Literal["error", "warning", "info"] = Field(default="error", description="the lowest finding "
                                                         "severity that fails the run (exit 1)")
    quiet: bool = Field(default=False, description="progress: warnings and errors only (no live line)")
    verbose: bool = Field(default=False, description="progress: also the debug lines (e.g. the load "
                          "processes' own log)")
    seed: int | None = Field(default=None, description="seed of every random choice (default: random, "
                             "written to results.json)")
    baseline: Path | None = Field(default=None, description="a run folder to compare this run with at "
                                  "its end (compare.md, compare.json; a regression exits 1)")
    max_regression: list[str] = Field(default_factory=list, description="regression gates, e.g. "
                                      "p95=10% or rps=-5% (default p95=10%, p99=20%, rps=-10%)")
    # [apps.<role>] tables: the target profile (harness/profile.py); None = the reference apps.
    apps: dict[str, AppRole] | None = Field(default=None, description="the target profile: [apps.<role>] "
                                            "tables (HARNESS_APPS: the same as JSON)")
    thresholds: list[str] = Field(default_factory=list, description="load SLO gates, e.g. "
                                  "get_task.p95<200ms (a [thresholds] table; HARNESS_THRESHOLDS: "
                                  "`;`-separated)")
    # Suite options.
    max_examples: int = _suite("contract", 20, "schemathesis examples per operation and mode, and "
                               "stateful scenarios (0: the suite's probes and rules only)", ge=0)
    clients: int = _suite("lifecycle", 8, "concurrent observers", ge=1)
    tasks: int = _suite("lifecycle", 24, "tasks the lifecycle suite creates", ge=1)
    chats: int = _suite("lifecycle", 3, "agent chats the lifecycle suite holds at once beside its "
                        "tasks, three turns each (0: none)", ge=0)
    scenarios: list[str] = _suite("load", ["mixed"], "load scenarios, one phase each (over_limit runs last)")
    users: int = _suite("load", 10, "concurrent users per phase (the pool in the open model)", ge=1)
    spawn_rate: float = _suite("load", 10.0, "users started per second", gt=0)
    duration: float = _suite("load", 30.0, "length of each load phase (60, 60s, 2m, 1h30m)")
    arrival_rate: float | None = _suite("load", None, "open model: iterations started per second "
                                        "(5, 5/s, 300/m)")
    poll_interval: float | None = _suite("load", None, "seconds between a load user's polls (default: "
                                         "from the read budget)")
    processes: int = _suite("load", 1, "processes on this machine that run load users (N > 1: a "
                            "Locust master and N-1 local workers)", ge=1)
    limit_groups: list[Literal["run", "get", "upload"]] = _suite(
        "load", [], "rate-limit groups the at/over-limit scenarios drive (default all)")
    master: bool = _suite("load", False, "also wait for load workers from other machines")
    master_bind: str = _suite("load", "127.0.0.1", "with master: the interface to listen on (loopback by "
                               "default; name a private one for workers on other machines)")
    master_port: int = _suite("load", 5557, "the Locust master's port", ge=1)
    master_host: str | None = _suite("load", None, "with `harness load --worker`: the master's host")
    expect_workers: int = _suite("load", 1, "with master: workers from other machines to wait for", ge=1)
    load_dir: Path | None = _suite("load", None, "`locust -f` only: folder for histories, metrics and "
                                   "the summary (default reports/locust-<time>)")
    groups: list[Literal["run", "get", "upload"]] = _suite("ratelimit", list(RATE_GROUPS),
                                                           "rate-limit groups to probe")
    discover: bool = _suite("ratelimit", False, "infer each group's limit and the window from the headers "
                            "and judge against those")
    # Set by the runner, never by a user: billable runs the preflight made (reported).
    preflight_runs: int = Field(default=0, json_schema_extra={"internal": True})

    @field_validator("deadline", "rate_window", "duration", "poll_interval", "suite_deadline",
                     "run_deadline", mode="before")
    @classmethod
    def _seconds(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str) else value

    @field_validator("arrival_rate", mode="before")
    @classmethod
    def _rate(cls, value: Any) -> Any:
        return parse_rate(value) if isinstance(value, str) else value

    @field_validator("thresholds", mode="before")
    @classmethod
    def _thresholds(cls, value: Any) -> list[str]:
        try:
            return thresholds_from_value(value)
        except ThresholdError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("max_regression")
    @classmethod
    def _gates(cls, value: list[str]) -> list[str]:
        from harness.compare.gates import parse_gates

        parse_gates(value)
        return value

    @field_validator("baseline")
    @classmethod
    def _baseline(cls, value: Path | None) -> Path | None:
        if value is not None and not (value / "results.json").is_file():
            raise ValueError(f"{value}: not a run folder (no results.json)")
        return value

    @field_validator("scenarios")
    @classmethod
    def _scenarios(cls, value: list[str]) -> list[str]:
        from harness.suites.load.scenarios import resolve

        return list(dict.fromkeys(resolve(name).name for name in value)) if value else ["mixed"]

    @field_validator("suites")
    @classmethod
    def _suite_names(cls, value: list[str]) -> list[str]:
        from harness.suites.registry import SUITES

        unknown = [name for name in value if name not in SUITES]
        if unknown:
            raise ValueError(f"unknown suite {unknown[0]!r} (known: {', '.join(SUITES)})")
        return value

    @model_validator(mode="after")
    def _verbosity(self) -> Settings:
        if self.quiet and self.verbose:
            raise ValueError("quiet and verbose exclude each other")
        return self

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

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return check_url(value)

    @property
    def profile(self) -> Profile:
        """The apps the suites use: the configured roles, else the reference server's apps."""
        return Profile(roles=dict(self.apps)) if self.apps else REFERENCE

    def public(self) -> dict[str, Any]:
        """The settings as they may appear in a report: no keys, only how many there are."""
        data = self.model_dump(mode="json", exclude={"api_keys", "apps"})
        data["api_key_count"] = len(self.api_keys)
        # App names only: inputs and setups may carry a user's own tokens.
        data["apps"] = {role: app.app for role, app in self.profile.roles.items()}
        data["apps_builtin"] = self.profile.builtin
        return data


def suite_of(name: str) -> str | None:
    """The suite a setting belongs to, or None for a run-wide one."""
    extra = Settings.model_fields[name].json_schema_extra
    return str(extra["suite"]) if isinstance(extra, dict) and "suite" in extra else None


def setting_names() -> list[str]:
    """Every setting a user may give (the runner's own fields left out)."""
    out = []
    for name, info in Settings.model_fields.items():
        extra = info.json_schema_extra
        if not (isinstance(extra, dict) and extra.get("internal")):
            out.append(name)
    return out


def env_name(name: str) -> str:
    """The variable of a setting: `HARNESS_` and the name in capitals."""
    return ENV_PREFIX + name.upper()


def flag_name(name: str) -> str | None:
    """The command-line flag of a setting (lists: singular, repeatable); None: file and variable only."""
    if name in FILE_ONLY:
        return None
    if _is_list(name):
        name = name.removesuffix("s")
    return "--" + name.replace("_", "-")


# Settings too structured for a flag, or meaningful only to `locust -f`.
FILE_ONLY = frozenset({"apps", "load_dir"})
ENV_NAMES = frozenset({env_name(n) for n in setting_names()} | {SDK_KEY_VARIABLE})


def _is_list(name: str) -> bool:
    annotation = str(Settings.model_fields[name].annotation)
    return annotation.startswith("list[")


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


def api_keys_from_env(env: Mapping[str, str] | None = None) -> list[str]:
    """HARNESS_API_KEYS (comma-separated), else the official SDKs' INFERENCE_API_KEY."""
    env = os.environ if env is None else env
    keys = [k.strip() for k in env.get(env_name("api_keys"), "").split(",") if k.strip()]
    if not keys and env.get(SDK_KEY_VARIABLE, "").strip():
        keys = [env[SDK_KEY_VARIABLE].strip()]
    return keys


def settings_env(settings: Settings, names: tuple[str, ...]) -> dict[str, str]:
    """`names` of `settings` as the variables that `load_settings` reads back (a child process's)."""
    out: dict[str, str] = {}
    for name in names:
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, bool):
            text = "1" if value else "0"
        elif isinstance(value, list):
            text = (";" if name == "thresholds" else ",").join(str(v) for v in value)
        elif isinstance(value, dict):
            text = json.dumps({k: v.model_dump(exclude_none=True) if isinstance(v, BaseModel) else v
                               for k, v in value.items()})
        else:
            text = str(value)
        out[env_name(name)] = text
    return out


def _from_env(env: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The settings the environment gives, and the variable each came from."""
    out: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for name in setting_names():
        var = env_name(name)
        if name == "api_keys":
            keys = api_keys_from_env(env)
            if keys:
                out[name] = keys
                origin[name] = var if env.get(var, "").strip() else SDK_KEY_VARIABLE
            continue
        if var not in env:
            continue
        text = env[var].strip()
        if not text:
            # Set but empty is an error for the target, not "no target": an empty CI secret must
            # not quietly test the self-started reference server and pass.
            if name == "base_url":
                raise ConfigError(f"{var} is set but empty (unset it to test the self-started "
                                  "reference server)")
            continue
        value: Any = text
        if name == "apps":
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{var}: not JSON ({exc.msg})") from None
        elif _is_list(name) and name != "thresholds":
            value = [part.strip() for part in text.split(",") if part.strip()]
        out[name] = value
        origin[name] = var
    return out, origin


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
    tables = {name: data.pop(name) for name in ("apps", "thresholds", *SUITE_TABLES)
              if isinstance(data.get(name), dict)}
    section = dict(data.pop("harness")) if isinstance(data.get("harness"), dict) else {}
    section.update(data)
    for name in ("apps", "thresholds"):  # [apps.<role>] and [thresholds] beside [harness]
        if name in tables:
            section.setdefault(name, tables.pop(name))
    known = set(setting_names())
    for suite, table in tables.items():
        for key, value in table.items():
            if key not in known or suite_of(key) != suite:
                raise ConfigError(f"{path}: [{suite}] has no setting {key!r}")
            section[key] = value
    if "api_keys" in section:
        raise ConfigError(f"{path}: keys never go in a settings file (it gets committed and uploaded): "
                          "pass --api-key, or set HARNESS_API_KEYS or INFERENCE_API_KEY")
    unknown = sorted(k for k in section if k not in known)
    if unknown:
        raise ConfigError(f"{path}: unknown setting {unknown[0]!r}")
    return section


def load_settings(flags: Mapping[str, Any], env: Mapping[str, str] | None = None,
                  toml_path: Path | None = None, required: bool = False) -> Settings:
    """Merge the sources; a None or empty flag overrides nothing.

    `required`: the file was named by the user (--config or HARNESS_CONFIG), so its absence is an
    error. `flags` keys are setting names (argparse `dest`s); others are ignored.
    """
    env = os.environ if env is None else env
    from_env, origin = _from_env(env)
    if toml_path is None and "config" in from_env:
        toml_path, required = Path(from_env["config"]), True
    path = toml_path or DEFAULT_TOML
    merged = _from_toml(path, required=required)
    origin.update({name: str(path) for name in merged if name not in origin})
    if merged or required:
        merged["config"] = path
    merged.update(from_env)
    known = set(setting_names())
    given = {k: v for k, v in flags.items() if k in known and v is not None and v != []}
    merged.update(given)
    origin.update({name: flag_name(name) or name for name in given})
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0]) if err["loc"] else ""
        where = ".".join(str(p) for p in err["loc"])
        source = origin.get(name)
        message = str(err["msg"]).removeprefix("Value error, ")
        prefix = f"setting {where}" + (f" (from {source})" if source else "")
        raise ConfigError(f"{prefix}: {message}") from exc
