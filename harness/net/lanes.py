"""Keep-alive lanes: one http.client connection per thread, strictly sequential requests.

The standard library's http.client on threads: ~4,500 requests/s on one core here, against ~650
for httpx, so a 1,000-request budget fits a 1 s window.
"""

from __future__ import annotations

import http.client
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from harness.checks.ratelimit import Exchange, HeaderNames, Role
from harness.net.bounded import READ_CAP
from harness.net.tls import policy


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    prefix: str
    base_url: str

    @classmethod
    def parse(cls, base_url: str) -> Target:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(parts.scheme, parts.hostname, port, parts.path.rstrip("/"), base_url.rstrip("/"))


class Lane:
    """One keep-alive connection of one key; requests on it are strictly sequential."""

    def __init__(self, target: Target, api_key: str, key_label: str, observer: str,
                 timeout: float) -> None:
        self.target = target
        self.key_label = key_label
        self.observer = observer
        self.timeout = timeout
        self.headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json",
                        "User-Agent": "inference-harness/0.1 (ratelimit)"}
        self.conn = self._new()

    def _new(self) -> http.client.HTTPConnection:
        if self.target.scheme == "https":
            return http.client.HTTPSConnection(self.target.host, self.target.port, timeout=self.timeout,
                                               context=policy().context())
        return http.client.HTTPConnection(self.target.host, self.target.port, timeout=self.timeout)

    def reconnect(self) -> None:
        """A fresh connection, opened now (so no request pays for the handshake)."""
        self.conn.close()
        self.conn = self._new()
        try:
            self.conn.connect()
        except OSError:
            self.conn.close()  # the first request will try again, and record a failure if any

    def close(self) -> None:
        self.conn.close()

    def send(self, method: str, path: str, body: bytes | None, group: str, role: Role,
             names: HeaderNames, follows: tuple[str, ...] = ()) -> Exchange:
        wall = time.time()
        send_ns = time.monotonic_ns()
        try:
            self.conn.request(method, self.target.prefix + path, body=body, headers=self.headers)
            response = self.conn.getresponse()
            data = response.read(READ_CAP + 1)
            if len(data) > READ_CAP:  # not read further: the harness holds at most the cap
                raise http.client.HTTPException(f"the answer passed {READ_CAP} bytes")
        except (OSError, http.client.HTTPException) as exc:
            done = time.monotonic_ns()
            self.conn.close()
            return Exchange(-1, self.key_label, group, role, self.observer, method, path, send_ns, wall,
                            done, error=f"{type(exc).__name__}: {exc}", follows=follows)
        done = time.monotonic_ns()
        if response.will_close:
            self.conn.close()
        headers = {n: v for n in (names.limit, names.remaining, names.reset, names.retry_after,
                                  "content-type") if (v := response.getheader(n)) is not None}
        return Exchange(-1, self.key_label, group, role, self.observer, method, path, send_ns, wall,
                        done, http=response.status, headers=headers,
                        body=data if role == "verify" else data[:4096], follows=follows)
