"""Which hosts the harness may send a request to besides the target itself.

Upload URLs and file URIs come from the target: they are fetched only on the target's own
origin or on a host the user allowed (`--allow-file-host`), never on whatever host they name.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit


def origin_of(url: str) -> tuple[str, str, int | None]:
    """The RFC 6454 origin of a URL: scheme, lower-case host, port (the scheme's default filled in);
    a URL that does not parse has the empty origin."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "", "", None
    try:
        port = parts.port
    except ValueError:
        port = -1
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port if port is not None else default


@dataclass(frozen=True)
class HostPolicy:
    base_url: str = ""
    file_hosts: frozenset[str] = field(default_factory=frozenset)

    def refusal(self, url: object) -> str | None:
        """Why a URL the target handed out must not be fetched; None when it may be."""
        if not isinstance(url, str):
            return f"{url!r:.80} is not a URL"
        scheme, host, _ = origin_of(url)
        if scheme not in ("http", "https"):
            return f"{url[:80]!r} is not an http(s) URL"
        if self.base_url and origin_of(url) == origin_of(self.base_url + "/"):
            return None
        if host in self.file_hosts:
            return None
        return (f"{host or repr(url[:80])} is neither the target's origin nor an allowed file host "
                f"(--allow-file-host {host}): not fetched")


_file_hosts: frozenset[str] = frozenset()


def set_file_hosts(hosts: Iterable[str]) -> None:
    """The hosts besides each target's origin this process may fetch files on (--allow-file-host)."""
    global _file_hosts
    _file_hosts = frozenset(h.lower() for h in hosts)


def file_policy(base_url: str) -> HostPolicy:
    """The policy of a client of `base_url`: its own origin and the allowed file hosts."""
    return HostPolicy(base_url, _file_hosts)
