"""One redaction layer: no API key, nor a prefix of 8 or more of its characters, is written or printed.

Every writer of the harness (history lines, results, rendered reports, the load suite's files,
stdout and stderr) passes its text through `redact`. The keys are registered once per process:
by the runner from the settings, by a load child from its environment.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

MIN_PREFIX = 8
MASK = "***"


class Redactor:
    """Replaces each secret, whole or cut short after at least MIN_PREFIX characters, raw or in its
    HTML- and JSON-escaped forms."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if len(secret) < 4:
                continue  # too short to tell from ordinary text; such a key is refused by the target
            forms |= {secret, html.escape(secret), html.escape(secret, quote=False), json.dumps(secret)[1:-1],
                      quote(secret, safe=""), quote_plus(secret)}
        # One pattern per form, all matched against the same text and their spans merged: in one
        # alternation (or one after another) a form that shares the key's first characters would
        # match only those and leave the rest of a key with `&` or `"` in clear.
        self._patterns = [(form[:MIN_PREFIX], re.compile(_prefix_pattern(form))) for form in forms]

    def __call__(self, text: str) -> str:
        spans = [match.span() for first, pattern in self._patterns
                 if first in text  # the common case: one substring test per form, no regex
                 for match in pattern.finditer(text)]
        if not spans:
            return text
        out: list[str] = []
        done = 0
        for start, end in _merged(spans):
            out += [text[done:start], MASK]
            done = end
        out.append(text[done:])
        return "".join(out)


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Overlapping or touching spans joined, in order."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _prefix_pattern(secret: str) -> str:
    """A regex for `secret` or any prefix of it at least MIN_PREFIX characters long."""
    head, tail = secret[:MIN_PREFIX], secret[MIN_PREFIX:]
    rest = ""
    for char in reversed(tail):
        rest = f"(?:{re.escape(char)}{rest})?"
    return re.escape(head) + rest


_active = Redactor()


def set_secrets(secrets: Iterable[str]) -> None:
    """Register this process's keys (the runner does, before any suite; a load child from its env)."""
    global _active
    _active = Redactor(list(secrets))


def redact(text: str, also: Iterable[str] = ()) -> str:
    """`text` without any registered key, nor any of `also`, whole or as a prefix."""
    text = _active(text)
    return Redactor(also)(text) if also else text
