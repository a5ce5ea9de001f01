"""Integer header values, parsed one way everywhere (Remaining, Limit, Reset, Retry-After)."""

from __future__ import annotations


def header_int(raw: str | None) -> int | None:
    """An integer header value ("42", " 7 ", "-1"); None for anything else ("1.5", "", "+3", "²",
    more than 20 digits)."""
    if raw is None:
        return None
    text = raw.strip()
    digits = text[1:] if text.startswith("-") else text
    if len(digits) > 20:
        return None  # no count or epoch second is that long, and int() refuses 4,300+ digits
    # isdigit() alone accepts "²" and other digits int() refuses: ASCII only.
    return int(text) if digits.isascii() and digits.isdigit() else None


def header_count(raw: str | None) -> int | None:
    """A non-negative integer header value; None for anything else (negative included)."""
    value = header_int(raw)
    return value if value is not None and value >= 0 else None
