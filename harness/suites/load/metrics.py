"""Counters and histograms of one process for one load phase; mergeable across processes.

No Locust import: the analysis (in the harness process) reads what the load processes wrote.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from harness.suites.load.hdr import HdrSet

MAX_SAMPLES = 5


@dataclass
class PhaseMetrics:
    """Requests, unexpected errors, 429s per request name; named counts; error samples; HDRs."""

    requests: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    rate_limited: dict[str, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)
    samples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    hdr: HdrSet = field(default_factory=HdrSet)

    def request(self, name: str) -> None:
        self.requests[name] = self.requests.get(name, 0) + 1

    def error(self, name: str, reason: str, sample: dict[str, Any] | None = None) -> None:
        self.errors[name] = self.errors.get(name, 0) + 1
        key = f"{name}: {reason}"
        self.reasons[key] = self.reasons.get(key, 0) + 1
        if sample is not None:
            self.sample(key, sample)

    def limited(self, name: str) -> None:
        self.rate_limited[name] = self.rate_limited.get(name, 0) + 1

    def count(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n

    def sample(self, key: str, sample: dict[str, Any]) -> None:
        kept = self.samples.setdefault(key, [])
        if len(kept) < MAX_SAMPLES:
            kept.append(sample)

    def merge(self, other: PhaseMetrics) -> None:
        for mine, theirs in ((self.requests, other.requests), (self.errors, other.errors),
                             (self.rate_limited, other.rate_limited), (self.counts, other.counts),
                             (self.reasons, other.reasons)):
            for key, value in theirs.items():
                mine[key] = mine.get(key, 0) + value
        for key, samples in other.samples.items():
            for sample in samples:
                self.sample(key, sample)
        self.hdr.merge(other.hdr)

    def to_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "errors": self.errors, "rate_limited": self.rate_limited,
                "counts": self.counts, "reasons": self.reasons, "samples": self.samples,
                "hdr": self.hdr.encode()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PhaseMetrics:
        return cls(requests=dict(data.get("requests", {})), errors=dict(data.get("errors", {})),
                   rate_limited=dict(data.get("rate_limited", {})),
                   counts=dict(data.get("counts", {})), reasons=dict(data.get("reasons", {})),
                   samples={k: list(v) for k, v in data.get("samples", {}).items()},
                   hdr=HdrSet.decode(data.get("hdr", {})))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))
