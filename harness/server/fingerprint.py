"""Fingerprints of setups: what `GET /workers` shows instead of a setup's values."""

from __future__ import annotations

import hashlib
import hmac
import secrets

# Keyed per server process so nobody can hash guessed setups offline and match them.
_SECRET = secrets.token_bytes(32)


def setup_fingerprint(setup_key: str) -> str:
    """A keyed SHA-256 of a canonical setup: equal setups match, values stay unreadable."""
    return hmac.new(_SECRET, setup_key.encode(), hashlib.sha256).hexdigest()[:32]
