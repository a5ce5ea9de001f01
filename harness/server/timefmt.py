"""RFC 3339 timestamps as the API sends them (UTC, milliseconds, `Z`)."""

from __future__ import annotations

from datetime import UTC, datetime


def rfc3339(epoch: float) -> str:
    """Format epoch seconds as `2026-01-02T03:04:05.678Z`."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"
