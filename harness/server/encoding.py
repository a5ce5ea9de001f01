"""JSON bodies as sent: compact ASCII-only encoding and the success envelope."""

from __future__ import annotations

import json
from typing import Any


def dump(value: Any) -> bytes:
    """Compact ASCII-only JSON (U+2028/U+2029 escaped, as WIRE.md section 8.2 requires)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def envelope(data_json: bytes) -> bytes:
    """`{success, data, messages}` around already-encoded data."""
    return b'{"success":true,"data":' + data_json + b',"messages":[]}'
