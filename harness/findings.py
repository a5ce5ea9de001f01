"""Findings (what a check found wrong) and the RunResult a suite returns."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

Severity = Literal["error", "warning", "info"]
SEVERITY_RANK: dict[str, int] = {"info": 0, "warning": 1, "error": 2}
SuiteStatus = Literal["passed", "failed", "error", "skipped"]


class Finding(BaseModel):
    """One broken promise, with the evidence and a way to reproduce it."""

    check: str
    severity: Severity = "error"
    suite: str
    message: str
    task_id: str | None = None
    evidence: dict[str, Any] = Field(default_factory=dict)
    repro: str | None = None


class SuiteResult(BaseModel):
    """What one suite did: its status, metrics, findings and the checks it ran."""

    name: str
    status: SuiteStatus
    checks: list[str] = Field(default_factory=list)
    metrics: dict[str, Any] = Field(default_factory=dict)
    findings: list[Finding] = Field(default_factory=list)
    error: str | None = None
    duration_s: float = 0.0
    skipped: dict[str, str] = Field(default_factory=dict)  # check id -> why it did not run
    # When the suite ran (epoch seconds): the report shades each suite's time on its charts.
    started: float | None = None
    ended: float | None = None


class RunResult(BaseModel):
    """A whole run: target, settings without keys, suites and all their findings."""

    schema_version: int = 1
    run_id: str
    target: str
    started_at: str
    finished_at: str | None = None
    settings: dict[str, Any] = Field(default_factory=dict)
    suites: list[SuiteResult] = Field(default_factory=list)
    interrupted: bool = False  # stopped by the user: the folder holds what ran until then

    @property
    def findings(self) -> list[Finding]:
        return [f for suite in self.suites for f in suite.findings]

    def to_json_dict(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        data["suites"] = {s["name"]: {k: v for k, v in s.items() if k not in ("name", "findings")}
                          for s in data["suites"]}
        data["findings"] = [f.model_dump(mode="json") for f in self.findings]
        return data
