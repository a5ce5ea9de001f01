"""Durations and rates as people write them: `90`, `60s`, `2m`, `1h30m`, `500ms`; `5`, `5/s`, `300/m`."""

from __future__ import annotations

import re

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
