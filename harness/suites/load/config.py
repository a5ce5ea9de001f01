"""What a load phase needs to know: from the settings (`locust -f`) or a plan file (library).

`locust -f locustfiles/...` reads the one settings model (harness/settings.py): the same
`HARNESS_*` variables and harness.toml (or `HARNESS_CONFIG`) as the `harness` command, the
`[apps.<role>]` profile included. docs/configuration.md lists every setting.

API keys never enter a plan, a message or a report: every process reads them from its own
environment (`HARNESS_API_KEYS`, comma-separated, else `INFERENCE_API_KEY`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from harness import __version__
from harness.contract import load_limits
from harness.profile import Profile
from harness.settings import DEFAULT_MAX_TASKS, Settings, is_loopback, load_settings


def default_load_dir(parent: Path = Path("reports")) -> Path:
    """Where a plain `locust -f` run writes when no folder is set: a new one per run."""
    return parent / time.strftime("locust-%Y%m%dT%H%M%SZ", time.gmtime())


def default_limits() -> tuple[float, dict[str, int]]:
    limits = load_limits()
    return limits.window_seconds, {name: g.limit for name, g in limits.groups.items()}


def scenario_apps(profile: Profile) -> tuple[dict[str, dict[str, Any]] | None, bool]:
    """Each scenario's run body from the profile (None: the reference apps), and whether built in."""
    if profile.builtin:
        return None, True
    quick, file, agent = profile.get("quick"), profile.get("file"), profile.get("agent")
    apps = {name: quick.body() for name in ("run_wait", "poll", "sse", "limit")} if quick else {}
    if file is not None and file.takes_file:
        apps["upload"] = file.body()
    if agent is not None:
        apps["agent_chat"] = agent_body(agent.app, agent.agent_config)
    return apps, False


# The agent_chat scenario's conversation: the docs' calculator example (a client tool the agent
# is offered, a question that asks for it, the product its result makes), then a second turn.
CALCULATOR = "calculator"
CALCULATOR_TOOL: dict[str, Any] = {
    "name": CALCULATOR, "display_name": CALCULATOR, "description": "Do math", "type": "client",
    "require_approval": False,
    "client": {"input_schema": {"type": "object", "required": ["expression"],
                                "properties": {"expression": {"type": "string",
                                                              "description": "Math expression"}}}},
}
QUESTION = "What is 42 * 17? Use the calculator tool."
PRODUCT = "714"
FOLLOW_UP = "Thank you. My name is Ada."


def agent_body(core_app: str, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """The first `POST /agents/run` body of the agent_chat scenario: a new chat with the profile's
    agent, offered the client calculator besides its own tools, asked the calculator question.
    Later turns send the same body with the chat's id and their own text (`follow_up`)."""
    agent_config: dict[str, Any] = {"core_app": {"ref": core_app}, **(config or {})}
    agent_config["tools"] = [*(agent_config.get("tools") or []), CALCULATOR_TOOL]
    return {"chat_id": None, "input": {"text": QUESTION}, "agent_config": agent_config,
            "agent_name": "inference-harness-load"}


def follow_up(body: dict[str, Any], chat_id: str, text: str = FOLLOW_UP) -> dict[str, Any]:
    """The body of a later turn in chat `chat_id` (WIRE.md section 13: `chat_id` names it)."""
    return {**body, "chat_id": chat_id, "input": {**body.get("input", {}), "text": text}}


def reference_apps() -> dict[str, dict[str, Any]]:
    """The run bodies of each scenario on the reference server ("$FILE": the uploaded file)."""
    return {
        "run_wait": {"app": "infsh/sleep", "input": {"seconds": 1}},
        "poll": {"app": "infsh/echo", "input": {"message": "load test poll"}},
        "sse": {"app": "infsh/sleep", "input": {"seconds": 0.5}},
        "upload": {"app": "infsh/image", "input": {"image": "$FILE"}},
        "limit": {"app": "infsh/echo", "input": {"message": "load test at the limit"}},
        "agent_chat": agent_body("infsh/claude-sonnet-4@latest"),
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
    harness_version: str = __version__  # a worker runs only plans of its own version
    # contract_mix: the contract's generated requests (harness/suites/load/contract_cases.py).
    contract_cases: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LoadConfig:
        names = {f.name for f in fields(cls)}
        # A plan without a version comes from an older master: unknown, never this one.
        return cls(**{"harness_version": "", **{k: v for k, v in data.items() if k in names}})

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
        """The phase the settings of this process describe (variables, then harness.toml)."""
        return cls.from_settings(load_settings({}, env), scenario)

    @classmethod
    def from_settings(cls, settings: Settings, scenario: str = "locust") -> LoadConfig:
        window, limits = default_limits()
        apps, builtin = scenario_apps(settings.profile)
        out_dir = settings.load_dir or default_load_dir(settings.out_dir)
        return cls(scenario=scenario, base_url=settings.base_url, window_s=settings.rate_window or window,
                   limits=limits, deadline_s=settings.deadline,
                   max_tasks=settings.max_tasks or DEFAULT_MAX_TASKS,
                   poll_interval_s=settings.poll_interval, arrival_rate=settings.arrival_rate,
                   out_dir=str(out_dir), thresholds=list(settings.thresholds),
                   allow_hosts=list(settings.allow_hosts), limit_groups=list(settings.limit_groups),
                   apps=apps if apps is not None else reference_apps(), apps_builtin=builtin,
                   ca_bundle=str(settings.ca_bundle) if settings.ca_bundle else None,
                   insecure=settings.insecure, file_hosts=list(settings.allow_file_hosts))

    def as_worker_of_this_machine(self, own: LoadConfig) -> tuple[LoadConfig, str | None]:
        """A master's plan as a worker runs it: the worker's own allow-list and TLS choice replace
        the master's (the plan arrives over an unauthenticated channel); and why it must refuse
        the plan, or None. The worker's keys go only where the worker itself allows."""
        plan = replace(self, allow_hosts=list(own.allow_hosts), file_hosts=list(own.file_hosts),
                       insecure=own.insecure, ca_bundle=own.ca_bundle)
        if self.harness_version != own.harness_version:
            # Users, records and checks change between versions: mixed figures would mislead.
            return plan, (f"the master runs harness {self.harness_version or '(unknown)'}, this worker "
                          f"{own.harness_version}: install the same version on every machine")
        if self.insecure and not own.insecure:
            return plan, ("the master asks for TLS without verification; this worker was not started "
                          "with --insecure")
        return plan, plan.guard_error(self.base_url)

    def guard_error(self, base_url: str | None) -> str | None:
        """Why this target must not be loaded, or None (loopback, or an allowed host)."""
        if not base_url:
            return "no target: set HARNESS_BASE_URL (or base_url in harness.toml) or pass --host"
        if not base_url.startswith(("http://", "https://")):
            return f"target {base_url!r} must start with http:// or https://"
        host = urlsplit(base_url).hostname or ""
        if not is_loopback(base_url) and host not in self.allow_hosts:
            return (f"{host} is not loopback and not allowed; load tests create billable tasks: "
                    f"set HARNESS_ALLOW_HOSTS={host} to accept")
        return None
