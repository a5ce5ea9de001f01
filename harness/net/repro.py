"""curl reproductions for findings, with the API key left as an environment variable."""

from __future__ import annotations

import json
import shlex
from typing import Any

KEY_VAR = "INFERENCE_API_KEY"
SECOND_KEY_VAR = "SECOND_API_KEY"


def curl(method: str, url: str, body: Any = None, *, auth: bool = True, key_var: str = KEY_VAR,
         bearer: str | None = None, headers: dict[str, str] | None = None, stream: bool = False,
         show_headers: bool = True, write_out: str | None = None, raw_body: str | None = None) -> str:
    """A copy-pasteable curl command; a key is `$<key_var>`, never its value.

    `bearer` sends that literal token instead (a made-up key, for refusals); `stream` adds -N;
    `write_out` prints only that -w format (body discarded); `raw_body` is sent as it is.
    """
    parts = ["curl", "-sS"]
    if stream:
        parts.append("-N")
    if write_out is not None:
        parts += ["-o", "/dev/null", "-w", shlex.quote(write_out)]
    elif show_headers:
        parts.append("-i")
    if method != "GET":
        parts += ["-X", method]
    parts.append(shlex.quote(url))
    if bearer is not None:
        parts += ["-H", shlex.quote(f"Authorization: Bearer {bearer}")]
    elif auth:
        parts += ["-H", f'"Authorization: Bearer ${key_var}"']
    for name, value in (headers or {}).items():
        parts += ["-H", shlex.quote(f"{name}: {value}")]
    if body is not None:
        parts += ["-H", shlex.quote("Content-Type: application/json"),
                  "-d", shlex.quote(json.dumps(body, separators=(",", ":")))]
    if raw_body is not None:
        parts += ["--data-binary", shlex.quote(raw_body)]
    return " ".join(parts)
