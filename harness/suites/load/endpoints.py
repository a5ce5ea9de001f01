"""The per-endpoint table of a load phase: requests, rps, errors and latency percentiles.

One row per request name (`run`, `get_task`, `stream_sse`, ...), latencies in milliseconds to
3 significant digits (what an HDR histogram of 3 digits can tell apart). Task stream rows also
carry time to first event and time to the terminal event; the agent chat stream's row carries
the agent_chat scenario's turn times (first delta, gap between deltas, the run's end).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

ROW_PERCENTILES = ("p50", "p90", "p95", "p99", "max")
# Request name -> the histograms its row also summarizes (`<prefix>.<metric>` as
# `<metric>_p50` and `<metric>_p95`).
STREAM_METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "stream_ndjson": ("ndjson", ("ttfe", "terminal")),
    "stream_sse": ("sse", ("ttfe", "terminal")),
    "chat_stream": ("agent", ("first_delta", "delta_gap", "turn")),
}


def significant(value: float | None, digits: int = 3) -> float | None:
    """`value` rounded to `digits` significant digits (None and non-finite values: None)."""
    if value is None or not math.isfinite(value):
        return None
    if value == 0:
        return 0.0
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))


def endpoint_rows(requests: Mapping[str, int], errors: Mapping[str, int],
                  latency_ms: Mapping[str, Mapping[str, Any]], duration_s: float) -> list[dict[str, Any]]:
    """One row per request name, in name order."""
    rows: list[dict[str, Any]] = []
    for name in sorted(requests):
        count = int(requests[name])
        row: dict[str, Any] = {
            "endpoint": name, "requests": count,
            "rps": significant(count / duration_s) if duration_s > 0 else None,
            "errors": int(errors.get(name, 0)),
        }
        summary = latency_ms.get(name, {})
        for label in ROW_PERCENTILES:
            row[label] = significant(summary.get(label))
        prefix, metrics = STREAM_METRICS.get(name, ("", ()))
        for metric in metrics:
            found = latency_ms.get(f"{prefix}.{metric}", {})
            row[f"{metric}_p50"] = significant(found.get("p50"))
            row[f"{metric}_p95"] = significant(found.get("p95"))
        rows.append(row)
    return rows
