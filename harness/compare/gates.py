"""`--max-regression` gates: `p95=10%` (a latency may grow by 10 %), `rps=-5%` (throughput may drop 5 %)."""

from __future__ import annotations

import re
from dataclasses import dataclass

LATENCY_STATS = ("p50", "p90", "p95", "p99")
STATS = (*LATENCY_STATS, "rps")
DEFAULT_GATES = ("p95=10%", "p99=20%", "rps=-10%")
_GATE = re.compile(r"^\s*(p50|p90|p95|p99|rps)\s*=\s*([+-]?\d+(?:\.\d+)?)\s*%\s*$")


class GateError(ValueError):
    """A `--max-regression` expression that does not parse."""


@dataclass(frozen=True)
class Gate:
    """How far `stat` may move the wrong way, as a fraction (0.10: 10 %)."""

    stat: str
    tolerance: float

    @property
    def text(self) -> str:
        sign = "-" if self.stat == "rps" else ""
        return f"{self.stat}={sign}{self.tolerance * 100:g}%"


def parse_gate(text: str) -> Gate:
    """`p95=10%` or `rps=-5%`; the sign of a throughput gate is optional (a drop is the bad way)."""
    match = _GATE.match(text)
    if match is None:
        raise GateError(f"regression gate {text!r}: expected STAT=N% with STAT one of {', '.join(STATS)}")
    value = abs(float(match[2])) / 100.0
    if match[1] != "rps" and match[2].startswith("-"):
        raise GateError(f"regression gate {text!r}: a latency gate is how much it may grow (e.g. p95=10%)")
    return Gate(match[1], value)


def parse_gates(texts: list[str] | tuple[str, ...]) -> dict[str, Gate]:
    """Gates by stat; a later gate for the same stat wins."""
    return {gate.stat: gate for gate in (parse_gate(t) for t in texts)}
