"""How every client of the harness verifies TLS: one policy for httpx, requests, http.client and Locust.

Verified by default. `--ca-bundle FILE` trusts a private CA (staging set-ups); `--insecure`
turns verification off, and the report's settings say so.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TlsPolicy:
    ca_bundle: Path | None = None
    insecure: bool = False

    def context(self) -> ssl.SSLContext:
        """An SSLContext for http.client and httpx."""
        if self.insecure:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        return ssl.create_default_context(cafile=str(self.ca_bundle) if self.ca_bundle else None)

    def requests_verify(self) -> str | bool:
        """The `verify` value of a requests session."""
        if self.insecure:
            return False
        return str(self.ca_bundle) if self.ca_bundle else True


_policy = TlsPolicy()


def set_policy(policy: TlsPolicy) -> None:
    """Set the policy for this process (the runner does, from the settings, before any suite)."""
    global _policy
    _policy = policy


def policy() -> TlsPolicy:
    return _policy
