"""`harness serve` and `python -m harness.server`: the reference server's command line.

Kept apart from harness/cli.py so that starting a server (tests start hundreds) imports no suite.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from collections.abc import Sequence

from harness.argtypes import non_negative_int, port, positive_float, positive_int
from harness.exit_codes import ExitCode
from harness.redaction import redact


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `harness serve`."""
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=port, default=8000, help="0 picks a free port")
    parser.add_argument("--api-key", action="append", dest="api_keys", default=[],
                        metavar="KEY", help="repeatable (env HARNESS_API_KEYS or INFERENCE_API_KEY); "
                        "with none, one "
                        "is generated and printed once")
    parser.add_argument("--rate-window", type=positive_float, metavar="S",
                        help="rate-limit window in seconds (contract: 60)")
    parser.add_argument("--speed", type=positive_float, default=1.0, metavar="F",
                        help="divide every task phase duration by F (default 1)")
    parser.add_argument("--agent-speed", type=positive_float, metavar="F",
                        help="divide the agent runs' phases (thinking, server tools, writing) by F "
                        "(default: --speed)")
    parser.add_argument("--fault", action="append", dest="faults", default=[], metavar="NAME",
                        help="turn on a named bug (repeatable; see docs/faults.md)")
    parser.add_argument("--heartbeat", type=positive_float, default=10.0, metavar="S",
                        help="stream heartbeat interval (default 10)")
    parser.add_argument("--progress-interval", type=positive_float, default=20.0, metavar="S",
                        help="longest gap between non-heartbeat stream updates (default 20)")
    parser.add_argument("--cloud-workers", type=int, default=16, metavar="N")
    parser.add_argument("--private-workers", type=int, default=2, metavar="N",
                        help="private workers per key (default 2)")
    parser.add_argument("--retention", type=positive_float, default=3600.0, metavar="S",
                        help="seconds finished tasks and files are kept (default 3600)")
    parser.add_argument("--max-finished-tasks", type=positive_int, default=10_000, metavar="N")
    parser.add_argument("--max-queued", type=non_negative_int, default=None, metavar="N",
                        help="reject (status 13) a run that arrives while N tasks wait for a worker "
                        "(default: admit every run)")
    parser.add_argument("--app-name", action="append", dest="app_names", default=[], metavar="NEW=APP",
                        help="serve a built-in app under another name only, e.g. acme/echo=infsh/echo "
                        "(repeatable; to try a target profile)")
    parser.add_argument("--max-upload-bytes", type=positive_int, default=10 * 1024 * 1024,
                        metavar="N")
    parser.add_argument("--max-body-bytes", type=positive_int, default=1024 * 1024, metavar="N",
                        help="JSON request bodies above N bytes answer 413 (read in chunks, never whole)")
    parser.add_argument("--max-files-per-request", type=positive_int, default=100, metavar="N",
                        help="POST /files with more entries answers 422 (default 100)")
    parser.add_argument("--max-files-per-key", type=positive_int, default=1000, metavar="N",
                        help="files one key may hold; past it the key's own oldest go (default 1000)")
    parser.add_argument("--max-stored-bytes-per-key", type=positive_int, default=64 * 1024 * 1024,
                        metavar="N", help="uploaded bytes one key may hold; past it the key's own "
                        "oldest go")
    parser.add_argument("--header-timeout", type=positive_float, default=10.0, metavar="S",
                        help="close a connection whose request headers are not complete within S "
                        "seconds (408; default 10)")
    parser.add_argument("--body-timeout", type=positive_float, default=10.0, metavar="S",
                        help="a request body must arrive within S seconds plus 1 s per MiB declared, else "
                        "408 and the connection closes (default 10)")
    parser.add_argument("--max-header-bytes", type=positive_int, default=64 * 1024, metavar="N",
                        help="request headers above N bytes answer 431 (default 65536)")
    parser.add_argument("--idle-timeout", type=positive_int, default=5, metavar="S",
                        help="close an idle keep-alive connection after S whole seconds (default 5)")


def _fail(message: str) -> int:
    print(f"harness: error: {redact(message)}", file=sys.stderr)
    return ExitCode.USAGE


def run_serve(args: argparse.Namespace) -> int:
    """Serve until interrupted; 2 for a bad setting or a port that cannot be had."""
    from harness.server.app import ServerConfig
    from harness.server.faults import Faults, UnknownFault
    from harness.server.serve import serve
    from harness.settings import api_keys_from_env

    keys = list(args.api_keys) or api_keys_from_env()
    generated = None
    if not keys:
        generated = "inf_" + secrets.token_urlsafe(18)
        keys = [generated]
    try:
        Faults(args.faults)
    except UnknownFault as exc:
        return _fail( str(exc))
    for name in ("cloud_workers", "private_workers"):
        if getattr(args, name) < 0:
            return _fail( f"--{name.replace('_', '-')} must be >= 0")
    app_names: dict[str, str] = {}
    for pair in args.app_names:
        new, sep, old = pair.partition("=")
        if not sep or not new.strip() or not old.strip():
            return _fail( f"--app-name wants NEW=APP, got {pair!r}")
        app_names[new.strip()] = old.strip()
    from harness.server.apps import renamed_catalog

    try:
        renamed_catalog(app_names)
    except ValueError as exc:
        return _fail( str(exc))
    config = ServerConfig(
        keys=keys, rate_window=args.rate_window, speed=args.speed, agent_speed=args.agent_speed,
        faults=args.faults,
        heartbeat_interval=args.heartbeat, progress_interval=args.progress_interval,
        cloud_workers=args.cloud_workers, private_workers=args.private_workers,
        retention_seconds=args.retention, max_finished_tasks=args.max_finished_tasks,
        max_upload_bytes=args.max_upload_bytes, app_names=app_names, max_body_bytes=args.max_body_bytes,
        max_files_per_request=args.max_files_per_request, max_files_per_key=args.max_files_per_key,
        max_stored_bytes_per_key=args.max_stored_bytes_per_key, header_timeout=args.header_timeout,
        max_header_bytes=args.max_header_bytes, idle_timeout=args.idle_timeout,
        body_timeout=args.body_timeout, max_queued=args.max_queued)
    try:
        serve(config, args.host, args.port, generated_key=generated)
    except OSError as exc:
        return _fail( f"cannot listen on {args.host}:{args.port}: {exc.strerror}")
    except KeyboardInterrupt:
        pass
    return ExitCode.OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="harness serve", description="Run the reference server.")
    add_serve_arguments(parser)
    return run_serve(parser.parse_args(argv))
