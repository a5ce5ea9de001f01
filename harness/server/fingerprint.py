"""Fingerprints of setups: what `GET /workers` shows instead of a setup's values.

Keyed per server process (nobody can hash guessed setups offline) and per pair of keys: the
key whose run left the setup on the worker, and the key looking. A key's own equal setups show
equal fingerprints (its warmth stays comparable), but another key's setup shows a fingerprint
that none of the viewer's own setups can produce, so running a guess and comparing confirms
nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

_SECRET = secrets.token_bytes(32)


def setup_fingerprint(setup_key: str, owner: str, viewer: str) -> str:
    """A keyed SHA-256 of a canonical setup as `viewer` sees it on a worker `owner` warmed."""
    message = b"\0".join(part.encode() for part in (owner, viewer, setup_key))
    return hmac.new(_SECRET, message, hashlib.sha256).hexdigest()[:32]
