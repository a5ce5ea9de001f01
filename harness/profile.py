"""The target profile: which of the target's apps each suite uses, by role.

`[apps.<role>]` tables in harness.toml map a role to an app and an input. Without them the
reference server's own apps are the profile; a suite whose check needs an unmapped role
reports that check skipped, with the reason.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

FILE_PLACEHOLDER = "$FILE"
ROLES: dict[str, str] = {
    "quick": "finishes in seconds: run-and-wait, polling, streams, rate limits, load",
    "slow": "runs long enough to cancel mid-run (it is never waited for)",
    "failing": "an input with which the run fails with an error",
    "invalid": "an input the app refuses with 422 (input validation)",
    "file": 'an input field that takes a file: "$FILE" becomes an uploaded file\'s URI',
    "setup": "setup parameters: a second run on a warm worker skips Setting Up",
    "flow": "a flow (several apps in one task)",
    "agent": "an agent's core model (app = its ref, e.g. infsh/claude-sonnet-4@latest) and optional "
             "agent_config (system_prompt, ...): the agents suite adds its own client calculator tool",
}


class AppRole(BaseModel):
    """One role: the app reference, its input, and the optional run fields."""

    model_config = ConfigDict(extra="forbid")

    app: str = Field(min_length=1)
    input: dict[str, Any] = Field(default_factory=dict)
    setup: dict[str, Any] | None = None
    infra: str | None = None
    workers: list[str] | None = None
    expect_output: dict[str, Any] | None = None  # a JSON subset the output must contain
    agent_config: dict[str, Any] | None = None  # the agent role: the rest of AgentConfigInput

    def body(self, file_uri: str | None = None, **extra: Any) -> dict[str, Any]:
        """The `POST /apps/run` body; "$FILE" in the input becomes `file_uri`."""
        out: dict[str, Any] = {"app": self.app, "input": with_file(self.input, file_uri)}
        for name in ("setup", "infra", "workers"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        out.update(extra)
        return out

    @property
    def takes_file(self) -> bool:
        """Whether some input value is exactly "$FILE" (the value `with_file` replaces)."""
        return _has_placeholder(self.input)


def _has_placeholder(value: Any) -> bool:
    if value == FILE_PLACEHOLDER:
        return True
    if isinstance(value, dict):
        return any(_has_placeholder(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_placeholder(v) for v in value)
    return False


def with_file(value: Any, uri: str | None) -> Any:
    """A copy of `value` with every "$FILE" replaced by `uri` (unchanged when `uri` is None)."""
    if value == FILE_PLACEHOLDER and uri is not None:
        return uri
    if isinstance(value, dict):
        return {k: with_file(v, uri) for k, v in value.items()}
    if isinstance(value, list):
        return [with_file(v, uri) for v in value]
    return value


class Profile(BaseModel):
    """The roles mapped for a target; `builtin` when they are the reference server's own apps."""

    roles: dict[str, AppRole] = Field(default_factory=dict)
    builtin: bool = False

    def get(self, role: str) -> AppRole | None:
        return self.roles.get(role)

    def missing(self, *roles: str) -> list[str]:
        """The roles of `roles` this profile does not map."""
        return [r for r in roles if r not in self.roles]

    def public(self) -> dict[str, Any]:
        """The profile as a report shows it (app names and inputs; no secrets live here)."""
        return {"builtin": self.builtin,
                "roles": {name: role.model_dump(exclude_none=True) for name, role in self.roles.items()}}


REFERENCE = Profile(builtin=True, roles={
    "quick": AppRole(app="infsh/echo", input={"message": "hello"}),
    "slow": AppRole(app="infsh/sleep", input={"seconds": 600}),
    "failing": AppRole(app="infsh/fail", input={"message": "planned failure"}),
    "invalid": AppRole(app="infsh/echo", input={"message": 12345}),
    "file": AppRole(app="infsh/image", input={"image": FILE_PLACEHOLDER}),
    "setup": AppRole(app="infsh/flux", setup={"model": "schnell"}, input={"prompt": "a lighthouse"}),
    "flow": AppRole(app="infsh/echo-image-flow", input={"message": "hi"}),
    "agent": AppRole(app="infsh/claude-sonnet-4@latest"),
})


def profile_from(tables: dict[str, Any] | None) -> Profile:
    """The profile of `[apps.<role>]` tables (validated), or the reference server's."""
    if not tables:
        return REFERENCE
    unknown = sorted(set(tables) - set(ROLES))
    if unknown:
        raise ValueError(f"unknown app role {unknown[0]!r} (roles: {', '.join(ROLES)})")
    return Profile(roles={name: AppRole.model_validate(value) for name, value in tables.items()})
