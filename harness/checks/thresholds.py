"""k6-like SLO thresholds: `get_task.p95<200ms`, `errors<0.1%`, `run.rps>=1.5`, `mixed:status.p99<1s`.

Grammar: `[SCENARIO:]METRIC[.STAT] OP NUMBER[UNIT]`, OP one of `< <= > >= == !=`.

- Latency metrics (HDR, milliseconds): the request names `run`, `get_task`, `status`,
  `stream_ndjson`, `stream_sse` (time to the response headers), `create_file`, `upload`,
  `download`, `cancel`, `list`, and the agent_chat scenario's `agent_run`, `chat_stream` (to the
  response headers), `get_chat`, `tool_result`, `stop_chat`; the stream metrics `ndjson.ttfe` /
  `sse.ttfe` (time to the first event), `ndjson.terminal` / `sse.terminal` (stream open to the
  terminal event), `ndjson.heartbeat_gap` / `sse.heartbeat_gap` (silence between two events);
  the task metrics `task.terminal` (run sent to terminal status seen), `task.queue` (received
  to dispatched, server clock),
  `task.setup_cold` / `task.setup_warm` (dispatched to running, with / without the Preparing
  phase); the agent metrics `agent.first_delta` (message sent to the turn's first delta),
  `agent.delta_gap` (between two consecutive deltas of one message), `agent.turn` (message sent
  to the run's end); and `iteration` (one scenario iteration, from its intended start in the
  open model).
  STAT: `p50 p90 p95 p99 p999` (also `p(95)`, `p99.9`), `min mean avg med max`, `count`,
  `rps`, and for request names `errors` (that request's unexpected-error rate). A latency
  value without a unit is in ms; units `us`, `ms`, `s`.
- Run-wide metrics: `errors` and `rate_limited` (rates: a bare number is a ratio, `%` a
  percentage), `rps`, `requests`, `iterations`, `dropped_iterations` (counts).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

REQUEST_METRICS = ("run", "get_task", "status", "stream_ndjson", "stream_sse", "create_file",
                   "upload", "download", "cancel", "list", "agent_run", "chat_stream", "get_chat",
                   "tool_result", "stop_chat")
STREAM_METRICS = tuple(f"{fmt}.{what}" for fmt in ("ndjson", "sse")
                       for what in ("ttfe", "terminal", "heartbeat_gap"))
TASK_METRICS = ("task.terminal", "task.queue", "task.setup_cold", "task.setup_warm")
AGENT_METRICS = ("agent.first_delta", "agent.delta_gap", "agent.turn")
LATENCY_METRICS = (*REQUEST_METRICS, *STREAM_METRICS, *TASK_METRICS, *AGENT_METRICS, "iteration")
RATE_GLOBALS = ("errors", "rate_limited")
COUNT_GLOBALS = ("rps", "requests", "iterations", "dropped_iterations")
LATENCY_STATS = {"p50": "p50", "med": "p50", "p90": "p90", "p95": "p95", "p99": "p99",
                 "p999": "p999", "p99.9": "p999", "min": "min", "mean": "mean", "avg": "mean",
                 "max": "max"}
Op = Literal["<", "<=", ">", ">=", "==", "!="]
Kind = Literal["latency", "rate", "count"]

_EXPR = re.compile(
    r"^\s*(?:(?P<scenario>[a-z][a-z0-9_]*)\s*:)?\s*(?P<metric>[A-Za-z_][A-Za-z0-9_.()]*?)\s*"
    r"(?P<op><=|>=|==|!=|<|>)\s*(?P<value>[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*"
    r"(?P<unit>ms|us|µs|s|%|/s)?\s*$")
_STAT = re.compile(r"^(?P<name>.+)\.(?P<stat>p\(\d+(?:\.\d+)?\)|p\d+(?:\.\d+)?|med|min|mean|avg|max|"
                   r"count|rps|errors)$")


class ThresholdError(ValueError):
    """An expression that does not parse or names an unknown metric."""


@dataclass(frozen=True)
class Threshold:
    text: str
    scenario: str | None
    metric: str
    stat: str | None
    op: Op
    value: float  # normalized: ms for latency, a ratio for rates, a plain number for counts
    kind: Kind

    def holds(self, observed: float) -> bool:
        return {"<": observed < self.value, "<=": observed <= self.value,
                ">": observed > self.value, ">=": observed >= self.value,
                "==": observed == self.value, "!=": observed != self.value}[self.op]


def _stat_label(raw: str) -> str:
    if raw.startswith("p("):
        number = raw[2:-1]
        raw = "p" + number
    if raw in LATENCY_STATS:
        return LATENCY_STATS[raw]
    if raw.startswith("p"):
        raise ThresholdError(f"percentile {raw!r} is not kept; use one of p50 p90 p95 p99 p999")
    return raw


def parse_threshold(text: str) -> Threshold:
    match = _EXPR.match(text)
    if match is None:
        raise ThresholdError(f"threshold {text!r}: expected METRIC[.STAT] OP NUMBER[UNIT], "
                             "e.g. get_task.p95<200ms, errors<0.1%, run.rps>=1.5")
    metric, op, unit = match["metric"], match["op"], match["unit"]
    value = float(match["value"])
    stat: str | None = None
    kind: Kind
    if metric in RATE_GLOBALS:
        kind = "rate"
    elif metric in COUNT_GLOBALS:
        kind = "count"
    else:
        parts = _STAT.match(metric)
        if parts is None:
            raise ThresholdError(f"threshold {text!r}: {metric!r} needs a statistic "
                                 "(.p95, .max, .rps, .count, .errors ...)")
        metric, stat = parts["name"], _stat_label(parts["stat"])
        if metric not in LATENCY_METRICS:
            raise ThresholdError(f"threshold {text!r}: unknown metric {metric!r}; known: "
                                 f"{', '.join(LATENCY_METRICS)}, {', '.join(RATE_GLOBALS + COUNT_GLOBALS)}")
        if stat == "errors":
            if metric not in REQUEST_METRICS:
                raise ThresholdError(f"threshold {text!r}: .errors applies to request names only")
            kind = "rate"
        elif stat in ("count", "rps"):
            kind = "count"
        else:
            kind = "latency"
    if kind == "rate":
        if unit not in (None, "%"):
            raise ThresholdError(f"threshold {text!r}: a rate takes a ratio or a percentage")
        value = value / 100.0 if unit == "%" else value
    elif kind == "latency":
        if unit in ("%", "/s"):
            raise ThresholdError(f"threshold {text!r}: a latency takes us, ms or s")
        value *= {None: 1.0, "ms": 1.0, "s": 1000.0, "us": 0.001, "µs": 0.001}[unit]
    elif unit not in (None, "/s"):
        raise ThresholdError(f"threshold {text!r}: a count or rate per second takes no unit")
    return Threshold(text.strip(), match["scenario"], metric, stat, op,  # type: ignore[arg-type]
                     value, kind)


def parse_thresholds(texts: list[str]) -> list[Threshold]:
    return [parse_threshold(t) for t in texts]


@dataclass
class MetricsView:
    """What thresholds are evaluated against (one scenario, or all of them merged)."""

    duration_s: float
    latency: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    rate_limited: dict[str, int] = field(default_factory=dict)
    iterations: int = 0
    dropped_iterations: int = 0

    def value(self, threshold: Threshold) -> float | None:
        """The observed value, or None when there is no sample to judge."""
        total = sum(self.requests.values())
        metric, stat = threshold.metric, threshold.stat
        if stat is None:
            if metric == "errors":
                return sum(self.errors.values()) / total if total else None
            if metric == "rate_limited":
                return sum(self.rate_limited.values()) / total if total else None
            if metric == "requests":
                return float(total)
            if metric == "rps":
                return total / self.duration_s if self.duration_s > 0 else None
            if metric == "iterations":
                return float(self.iterations)
            return float(self.dropped_iterations)
        if stat == "errors":
            count = self.requests.get(metric, 0)
            return self.errors.get(metric, 0) / count if count else None
        summary = self.latency.get(metric)
        requested = self.requests.get(metric) if metric in REQUEST_METRICS else None
        count = requested if requested is not None else int(summary["count"]) if summary else 0
        if stat == "count":
            return float(count)
        if stat == "rps":
            return count / self.duration_s if self.duration_s > 0 else None
        if summary is None:
            return None
        return float(summary[stat])


@dataclass(frozen=True)
class ThresholdResult:
    threshold: Threshold
    observed: float | None

    @property
    def passed(self) -> bool | None:
        """True/False; None when there was nothing to judge (no samples)."""
        return None if self.observed is None else self.threshold.holds(self.observed)

    def describe(self) -> str:
        t = self.threshold
        if self.observed is None:
            return f"{t.text}: no samples"
        unit = {"latency": " ms", "rate": "", "count": ""}[t.kind]
        shown = f"{self.observed * 100:.3g}%" if t.kind == "rate" else f"{self.observed:.6g}{unit}"
        return f"{t.text}: observed {shown} ({'ok' if self.passed else 'BREACHED'})"


def evaluate(thresholds: list[Threshold], overall: MetricsView,
             per_scenario: dict[str, MetricsView]) -> list[ThresholdResult]:
    results = []
    for threshold in thresholds:
        if threshold.scenario is None:
            view: MetricsView | None = overall
        else:
            view = per_scenario.get(threshold.scenario)
        results.append(ThresholdResult(threshold, view.value(threshold) if view else None))
    return results


def thresholds_from_value(raw: object) -> list[str]:
    """Thresholds as a settings file or variable gives them: one expression, a list, or a k6-like table.

    A table's keys are metrics and its values conditions: `get_task = ["p95<200ms", "p99<1s"]`,
    `errors = "<0.1%"`. Every expression is parsed: a typo raises ThresholdError.
    """
    if raw is None:
        return []
    if isinstance(raw, str):
        out = [part.strip() for part in raw.split(";") if part.strip()]
    elif isinstance(raw, list):
        out = [str(item).strip() for item in raw if str(item).strip()]
    elif isinstance(raw, dict):
        out = []
        for metric, conditions in raw.items():
            for condition in conditions if isinstance(conditions, list) else [conditions]:
                text = str(condition).strip()
                joiner = "" if text[:1] in "<>=!" else "."
                out.append(f"{metric}{joiner}{text}")
    else:
        raise ThresholdError("thresholds must be an expression, a list of expressions or a table")
    parse_thresholds(out)
    return out
