"""Run the reference server on uvicorn: bind first, announce the URL, then serve."""

from __future__ import annotations

import contextlib
import gc
import socket
import sys
from typing import TextIO

import uvicorn

from harness.server.app import ServerConfig, create_app
from harness.server.protocol import guarded_protocol


def bind(host: str, port: int) -> socket.socket:
    """Bind and listen, so the announced URL accepts connections at once (port 0 = any free)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def raise_open_files_limit() -> None:
    """Raise the soft limit on open files to the hard one: each stream holds a socket, and the
    usual soft limit (1024) would refuse connections long before the server is busy."""
    try:
        import resource
    except ImportError:  # not on Windows
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(config: ServerConfig, host: str, port: int, out: TextIO = sys.stdout,
          generated_key: str | None = None) -> None:
    """Serve until interrupted. Prints the workers, a generated key (once) and the URL."""
    raise_open_files_limit()
    app = create_app(config)
    sock = bind(host, port)
    api = app.state.api
    cloud = [w.id for w in api.engine.workers if w.pool == "cloud"]
    private = [w.id for w in api.engine.workers if w.pool == "private"]
    print(f"cloud workers: {cloud[0]}..{cloud[-1]} ({len(cloud)})" if cloud
          else "cloud workers: none", file=out)
    print(f"private workers: {', '.join(private) or 'none'}", file=out)
    if config.faults:
        print(f"faults on: {', '.join(config.faults)}", file=out)
    if generated_key is not None:
        print(f"generated API key (shown once): {generated_key}", file=out)
    print(f"listening on {url_of(sock)}", file=out, flush=True)
    # Long-lived tasks and streams make full collections slow and useless (pauses of 70-200 ms
    # were measured while 2000 streams opened): freeze start-up objects, collect less often.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    server = uvicorn.Server(uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=2,
        http=guarded_protocol(config.header_timeout, config.max_header_bytes),
        timeout_keep_alive=config.idle_timeout))
    server.run(sockets=[sock])
