"""What a load phase needs to know, from the environment (`locust -f`) or a plan file (library).

API keys never enter a plan, a message or a report: every process reads them from its own
environment (`HARNESS_API_KEYS`, comma-separated, else `INFERENCE_API_KEY`).

Environment variables (all optional except a key and a URL):

| Variable | Meaning | Default |
|---|---|---|
| `HARNESS_BASE_URL` | target base URL (or Locust's `--host`) | none |
| `HARNESS_API_KEYS` | comma-separated keys; users take them round-robin | `INFERENCE_API_KEY` |
| `HARNESS_RATE_WINDOW` | rate-limit window in seconds (a scaled test server) | contracts/limits.yaml |
| `HARNESS_DEADLINE` | seconds a task may take before it counts as lost | 60 |
| `HARNESS_MAX_TASKS` | tasks this load run may create (all processes together) | 500 |
| `HARNESS_POLL_INTERVAL` | seconds between polls | from the read budget |
| `HARNESS_ARRIVAL_RATE` | open model: iterations per second (`5`, `5/s`, `300/m`) | closed model |
| `HARNESS_LOAD_DIR` | folder for histories, metrics and the summary | `reports/locust-<time>` |
| `HARNESS_THRESHOLDS` | `;`-separated thresholds (`get_task.p95<200ms;errors<0.1%`) | none |
| `HARNESS_ALLOW_HOSTS` | comma-separated non-loopback hosts that may be loaded | none |
| `HARNESS_LIMIT_GROUPS` | comma-separated rate-limit groups the at/over-limit scenarios drive | all |
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from harness.contract import load_limits
from harness.settings import is_loopback

_RATE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(?:/\s*(s|sec|second|m|min|minute|h|hour))?\s*$")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|h|m|s)?")


def parse_rate(text: str) -> float:
    """`5`, `5/s`, `300/m`, `2/h` -> per second."""
    match = _RATE.match(text)
    if match is None:
        raise ValueError(f"rate {text!r}: expected N/s, N/m or N/h")
    value = float(match[1])
    unit = (match[2] or "s")[0]
    per_second = value / {"s": 1.0, "m": 60.0, "h": 3600.0}[unit]
    if per_second <= 0:
        raise ValueError(f"rate {text!r} must be positive")
    return per_second


def parse_duration(text: str) -> float:
    """`60`, `60s`, `2m`, `1h30m`, `500ms` -> seconds."""
    text = text.strip()
    pos, total = 0, 0.0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total += float(match[1]) * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[match[2] or "s"]
        pos = match.end()
    if not text or pos != len(text) or total <= 0:
        raise ValueError(f"duration {text!r}: expected e.g. 60, 60s, 2m, 1h30m")
    return total


def keys_from_env(env: Mapping[str, str] | None = None) -> list[str]:
    env = os.environ if env is None else env
    keys = [k.strip() for k in env.get("HARNESS_API_KEYS", "").split(",") if k.strip()]
    if not keys and env.get("INFERENCE_API_KEY", "").strip():
        keys = [env["INFERENCE_API_KEY"].strip()]
    return keys


def default_limits() -> tuple[float, dict[str, int]]:
    limits = load_limits()
    return limits.window_seconds, {name: g.limit for name, g in limits.groups.items()}


def reference_apps() -> dict[str, dict[str, Any]]:
    """The run bodies of each scenario on the reference server ("$FILE": the uploaded file)."""
    return {
        "run_wait": {"app": "infsh/sleep", "input": {"seconds": 1}},
        "poll": {"app": "infsh/echo", "input": {"message": "load test poll"}},
        "sse": {"app": "infsh/sleep", "input": {"seconds": 0.5}},
        "upload": {"app": "infsh/image", "input": {"image": "$FILE"}},
        "limit": {"app": "infsh/echo", "input": {"message": "load test at the limit"}},
    }


@dataclass
class LoadConfig:
    """One load phase (one scenario); JSON-safe, never holds a key."""

    scenario: str = "locust"
    base_url: str | None = None
    window_s: float = 60.0
    limits: dict[str, int] = field(default_factory=dict)
    deadline_s: float = 60.0
    max_tasks: int = 500
    poll_interval_s: float | None = None
    arrival_rate: float | None = None
    out_dir: str = ""
    workers: int = 1
    library: bool = False
    thresholds: list[str] = field(default_factory=list)
    allow_hosts: list[str] = field(default_factory=list)
    limit_groups: list[str] = field(default_factory=list)  # at/over-limit lanes; empty: every group
    run_token: str = ""
    # Scenario -> the POST /apps/run body its users send (from the target profile).
    apps: dict[str, dict[str, Any]] = field(default_factory=reference_apps)
    apps_builtin: bool = True  # the reference apps: their outputs are known (upload round trip)
    ca_bundle: str | None = None
    insecure: bool = False
    file_hosts: list[str] = field(default_factory=list)  # besides the target's origin (--allow-file-host)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LoadConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def from_json(cls, text: str) -> LoadConfig:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("a load plan must be a JSON object")
        return cls.from_dict(data)

    @property
    def poll_interval(self) -> float:
        """Seconds between polls: given, else two reads per second's worth of the read budget."""
        if self.poll_interval_s is not None:
            return self.poll_interval_s
        budget = self.limits.get("get", 1000) / self.window_s
        return max(0.05, 2.0 / budget)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, scenario: str = "locust") -> LoadConfig:
        env = os.environ if env is None else env
        window, limits = default_limits()
        config = cls(scenario=scenario, window_s=window, limits=limits)
        if env.get("HARNESS_BASE_URL"):
            config.base_url = env["HARNESS_BASE_URL"].rstrip("/")
        if env.get("HARNESS_RATE_WINDOW"):
            config.window_s = float(env["HARNESS_RATE_WINDOW"])
        if env.get("HARNESS_DEADLINE"):
            config.deadline_s = parse_duration(env["HARNESS_DEADLINE"])
        if env.get("HARNESS_MAX_TASKS"):
            config.max_tasks = int(env["HARNESS_MAX_TASKS"])
        if env.get("HARNESS_POLL_INTERVAL"):
            config.poll_interval_s = parse_duration(env["HARNESS_POLL_INTERVAL"])
        if env.get("HARNESS_ARRIVAL_RATE"):
            config.arrival_rate = parse_rate(env["HARNESS_ARRIVAL_RATE"])
        config.out_dir = env.get("HARNESS_LOAD_DIR") or str(
            Path("reports") / time.strftime("locust-%Y%m%dT%H%M%SZ", time.gmtime()))
        config.thresholds = [t.strip() for t in env.get("HARNESS_THRESHOLDS", "").split(";")
                             if t.strip()]
        config.insecure = env.get("HARNESS_INSECURE", "") == "1"
        config.ca_bundle = env.get("HARNESS_CA_BUNDLE") or None
        config.file_hosts = [h.strip() for h in env.get("HARNESS_FILE_HOSTS", "").split(",") if h.strip()]
        config.allow_hosts = [h.strip() for h in env.get("HARNESS_ALLOW_HOSTS", "").split(",")
                              if h.strip()]
        config.limit_groups = [g.strip() for g in env.get("HARNESS_LIMIT_GROUPS", "").split(",")
                               if g.strip()]
        unknown = [g for g in config.limit_groups if g not in config.limits]
        if unknown:
            raise ValueError(f"HARNESS_LIMIT_GROUPS: unknown group {unknown[0]!r} "
                             f"(known: {', '.join(config.limits)})")
        return config

    def as_worker_of_this_machine(self, own: LoadConfig) -> tuple[LoadConfig, str | None]:
        """A master's plan as a worker runs it: the worker's own allow-list and TLS choice replace
        the master's (the plan arrives over an unauthenticated channel); and why it must refuse
        the plan, or None. The worker's keys go only where the worker itself allows."""
        plan = replace(self, allow_hosts=list(own.allow_hosts), file_hosts=list(own.file_hosts),
                       insecure=own.insecure, ca_bundle=own.ca_bundle)
        if self.insecure and not own.insecure:
            return plan, ("the master asks for TLS without verification; this worker was not started "
                          "with --insecure")
        return plan, plan.guard_error(self.base_url)

    def guard_error(self, base_url: str | None) -> str | None:
        """Why this target must not be loaded, or None (loopback, or an allowed host)."""
        if not base_url:
            return "no target: set HARNESS_BASE_URL or pass --host"
        if not base_url.startswith(("http://", "https://")):
            return f"target {base_url!r} must start with http:// or https://"
        host = urlsplit(base_url).hostname or ""
        if not is_loopback(base_url) and host not in self.allow_hosts:
            return (f"{host} is not loopback and not allowed; load tests create billable tasks: "
                    f"set HARNESS_ALLOW_HOSTS={host} to accept")
        return None
