"""Small misbehaving loopback servers on raw sockets: one thread per connection, stopped by the
context manager. A handler gets the connection, the request (method, path, headers) and a stop
event to poll, and writes whatever it likes."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


Handler = Callable[[socket.socket, Request, threading.Event], None]


def read_request(conn: socket.socket) -> Request | None:
    """One request head and its Content-Length body; None if the client left first."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path = ([*lines[0].split(" "), "", ""])[:2]
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0") or 0)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return Request(method, path, headers, body)


def send_all(conn: socket.socket, data: bytes) -> bool:
    """False once the client has gone (the handler should stop)."""
    try:
        conn.sendall(data)
    except OSError:
        return False
    return True


def drip(conn: socket.socket, stop: threading.Event, byte: bytes = b" ", every_s: float = 1.0) -> None:
    """One byte every `every_s` until the client leaves or the server stops."""
    while not stop.is_set() and send_all(conn, byte):
        stop.wait(every_s)


def flood(conn: socket.socket, stop: threading.Event, chunk: bytes) -> None:
    """`chunk` over and over, as fast as the client reads, until it leaves or the server stops."""
    while not stop.is_set() and send_all(conn, chunk):
        pass


@contextmanager
def raw_server(handler: Handler, host: str = "127.0.0.1", keep_alive: bool = False) -> Iterator[str]:
    """Serve `handler` on a free port of `host`; yields the base URL. `keep_alive`: a connection
    may carry several requests (the handler then answers with a length and returns)."""
    listener = socket.create_server((host, 0))
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            while not stop.is_set():
                try:
                    request = read_request(conn)
                except OSError:
                    return
                if request is None:
                    return
                try:
                    handler(conn, request, stop)
                except OSError:
                    return
                if not keep_alive:
                    return

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://{host}:{listener.getsockname()[1]}"
    finally:
        stop.set()
        listener.close()


def answer(status: int, body: bytes, headers: dict[str, str] | None = None,
           content_type: str = "application/json") -> bytes:
    """A whole answer with its Content-Length (keep-alive unless `headers` say otherwise)."""
    fields = {"Content-Type": content_type, "Content-Length": str(len(body)), **(headers or {})}
    head = f"HTTP/1.1 {status} X\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
    return (head + "\r\n").encode() + body
