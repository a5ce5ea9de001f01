"""curl reproductions for findings, with the API key left as an environment variable."""

from __future__ import annotations

import json
import shlex
from typing import Any


def curl(method: str, url: str, body: Any = None, auth: bool = True,
         headers: dict[str, str] | None = None) -> str:
    """A copy-pasteable curl command; the key is `$INFERENCE_API_KEY`, never its value."""
    parts = ["curl", "-sS", "-i"]
    if method != "GET":
        parts += ["-X", method]
    parts.append(shlex.quote(url))
    if auth:
        parts += ["-H", '"Authorization: Bearer $INFERENCE_API_KEY"']
    for name, value in (headers or {}).items():
        parts += ["-H", shlex.quote(f"{name}: {value}")]
    if body is not None:
        parts += ["-H", shlex.quote("Content-Type: application/json"),
                  "-d", shlex.quote(json.dumps(body, separators=(",", ":")))]
    return " ".join(parts)
