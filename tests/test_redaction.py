"""The redaction layer: no key, nor a prefix of 8+ of its characters, in any form, survives."""

from __future__ import annotations

import html
import json
from urllib.parse import quote, quote_plus

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.redaction import MIN_PREFIX, Redactor

keys = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=12, max_size=40)
noise = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=30)


def _forms(key: str) -> list[str]:
    return [key, html.escape(key), html.escape(key, quote=False), json.dumps(key)[1:-1],
            quote(key, safe=""), quote_plus(key)]


@settings(max_examples=300, deadline=None)
@given(keys, noise, noise, st.integers(MIN_PREFIX, 40), st.integers(0, 5))
def test_no_form_or_prefix_survives(key: str, before: str, after: str, cut: int, which: int) -> None:
    form = _forms(key)[which]
    text = f"{before}{form}{after} and {form[:cut]}"
    out = Redactor([key])(text)
    for shown in _forms(key):
        assert shown[:MIN_PREFIX] not in out.replace(before, "").replace(after, ""), (key, text, out)


def test_text_without_keys_is_unchanged_and_short_prefixes_stay() -> None:
    redact = Redactor(["inf_ABCDEFGHIJKLMNOPQRSTUVWX"])
    assert redact("nothing here") == "nothing here"
    assert redact("inf_ABC is 7 characters") == "inf_ABC is 7 characters"
    assert redact("Bearer inf_ABCDEFGHIJ!") == "Bearer ***!"
