"""Keep-alive lanes: one http.client connection per thread, strictly sequential requests.

The standard library's http.client on threads: ~4,500 requests/s on one core here, against ~650
for httpx, so a 1,000-request budget fits a 1 s window.

http.client's timeout is per read: a target sending a byte a second would hold a lane forever.
Each answer (head and body) therefore has one deadline, `timeout` seconds after it is asked for:
every read of the answer waits at most the time left.
"""

from __future__ import annotations

import http.client
import io
import socket
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


class _Deadlined(io.RawIOBase):
    """A socket's reads, each waiting at most until `end` (monotonic): past it, TimeoutError."""

    def __init__(self, sock: socket.socket, end: float, deadline_s: float) -> None:
        super().__init__()
        self._sock = sock
        # The socket's own reader, so the socket stays open while the answer is read even after
        # http.client closed the connection (it does so at once for a `Connection: close` answer).
        self._io = sock.makefile("rb", buffering=0)
        self._end = end
        self._deadline_s = deadline_s

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        left = self._end - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"the answer took more than {self._deadline_s:g} s")
        self._sock.settimeout(left)
        try:
            return self._io.readinto(buffer) or 0
        except TimeoutError:
            raise TimeoutError(f"the answer took more than {self._deadline_s:g} s") from None

    def close(self) -> None:
        self._io.close()
        super().close()


class _DeadlineSocket:
    """What http.client.HTTPResponse takes a socket for: `makefile`, reading under the deadline."""

    def __init__(self, sock: socket.socket, end: float, deadline_s: float) -> None:
        self._raw = _Deadlined(sock, end, deadline_s)

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(self._raw)


class Lane:
    """One keep-alive connection of one key; requests on it are strictly sequential.

    `timeout` bounds each answer as a whole (and the connect and each send on its own).
    """

    def __init__(self, target: Target, api_key: str, key_label: str, observer: str,
                 timeout: float) -> None:
        self.target = target
        self.key_label = key_label
        self.observer = observer
        self.timeout = timeout
        self.headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json",
                        "User-Agent": "inference-harness/0.1 (ratelimit)"}
        self._end = 0.0  # the current answer's deadline (monotonic)
        self.conn = self._new()

    def _new(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection
        if self.target.scheme == "https":
            conn = http.client.HTTPSConnection(self.target.host, self.target.port, timeout=self.timeout,
                                               context=policy().context())
        else:
            conn = http.client.HTTPConnection(self.target.host, self.target.port, timeout=self.timeout)
        conn.response_class = self._response  # type: ignore[assignment]
        return conn

    def _response(self, sock: socket.socket, **kwargs: object) -> http.client.HTTPResponse:
        """http.client's response, reading through the deadline of the answer being asked for."""
        return http.client.HTTPResponse(_DeadlineSocket(sock, self._end, self.timeout),  # type: ignore[arg-type]
                                        **kwargs)  # type: ignore[arg-type]

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
            if self.conn.sock is not None:
                self.conn.sock.settimeout(self.timeout)  # the last answer's reads left it shorter
            self._end = time.monotonic() + self.timeout
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
