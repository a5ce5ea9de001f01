"""The `harness` command: parse, call a suite, print a summary, set the exit code.

Exit codes: 0 clean, 1 findings, 2 usage or config error, 3 target unreachable.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import secrets
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from typing import NoReturn
from urllib.parse import urlsplit

import httpx

from harness import __version__

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1: {text!r}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range: {text!r}")
    return value


def _add_target_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("target options")
    group.add_argument("--base-url", help="target API; without it a reference server is started "
                       "on a free loopback port (env HARNESS_BASE_URL)")
    group.add_argument("--api-key", action="append", dest="api_keys", default=[],
                       metavar="KEY", help="repeatable; the first is primary, the second is used "
                       "for isolation checks (env HARNESS_API_KEYS, comma-separated, or "
                       "INFERENCE_API_KEY)")
    group.add_argument("--rate-window", type=_positive_float, metavar="S",
                       help="the target's rate-limit window in seconds when it is not the "
                       "contract's 60 (a self-started reference server uses 2)")
    group.add_argument("--max-tasks", type=_positive_int, metavar="N",
                       help="budget of billable runs a suite may create (default 500)")
    group.add_argument("--allow-host", action="append", dest="allow_hosts", default=[],
                       metavar="HOST", help="non-loopback host that task-creating suites may "
                       "target (repeatable)")
    group.add_argument("--deadline", type=_positive_float, metavar="S",
                       help="per-task deadline in seconds (default 60)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="harness", description="Conformance, lifecycle, rate-limit and load "
                     "harness for the inference.sh task API.",
                     epilog="Exit codes: 0 clean, 1 findings, 2 usage or config error, "
                     "3 target unreachable.")
    parser.add_argument("--version", action="version", version=f"harness {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = sub.add_parser("serve", help="run the reference server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=_port, default=8000, help="0 picks a free port")
    serve.add_argument("--api-key", action="append", dest="api_keys", default=[],
                       metavar="KEY", help="repeatable (env HARNESS_API_KEYS); with none, one "
                       "is generated and printed once")
    serve.add_argument("--rate-window", type=_positive_float, metavar="S",
                       help="rate-limit window in seconds (contract: 60)")
    serve.add_argument("--speed", type=_positive_float, default=1.0, metavar="F",
                       help="divide every task phase duration by F (default 1)")
    serve.add_argument("--fault", action="append", dest="faults", default=[], metavar="NAME",
                       help="turn on a named bug (repeatable; see docs/faults.md)")
    serve.add_argument("--heartbeat", type=_positive_float, default=10.0, metavar="S",
                       help="stream heartbeat interval (default 10)")
    serve.add_argument("--progress-interval", type=_positive_float, default=20.0, metavar="S",
                       help="longest gap between non-heartbeat stream updates (default 20)")
    serve.add_argument("--cloud-workers", type=int, default=16, metavar="N")
    serve.add_argument("--private-workers", type=int, default=2, metavar="N",
                       help="private workers per key (default 2)")
    serve.add_argument("--retention", type=_positive_float, default=3600.0, metavar="S",
                       help="seconds finished tasks and files are kept (default 3600)")
    serve.add_argument("--max-finished-tasks", type=_positive_int, default=10_000, metavar="N")
    serve.add_argument("--max-upload-bytes", type=_positive_int, default=10 * 1024 * 1024,
                       metavar="N")

    check = sub.add_parser("check", help="run every suite against a target and write a report")
    _add_target_options(check)
    check.add_argument("--out", dest="out_dir", metavar="DIR",
                       help="parent folder of run folders (default reports/)")
    check.add_argument("--speed", type=_positive_float, metavar="F",
                       help="speed of a self-started reference server (default 10)")
    check.add_argument("--fault", action="append", dest="faults", default=[], metavar="NAME",
                       help="start the self-started reference server with this fault "
                       "(to see the harness catch it)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    return _check(args)


def _fail(code: int, message: str) -> int:
    print(f"harness: error: {message}", file=sys.stderr)
    return code


def _serve(args: argparse.Namespace) -> int:
    from harness.server.app import ServerConfig
    from harness.server.faults import Faults, UnknownFault
    from harness.server.serve import serve

    keys = list(args.api_keys) or [
        k.strip() for k in os.environ.get("HARNESS_API_KEYS", "").split(",") if k.strip()]
    generated = None
    if not keys:
        generated = "inf_" + secrets.token_urlsafe(18)
        keys = [generated]
    try:
        Faults(args.faults)
    except UnknownFault as exc:
        return _fail(EXIT_USAGE, str(exc))
    for name in ("cloud_workers", "private_workers"):
        if getattr(args, name) < 0:
            return _fail(EXIT_USAGE, f"--{name.replace('_', '-')} must be >= 0")
    config = ServerConfig(
        keys=keys, rate_window=args.rate_window, speed=args.speed, faults=args.faults,
        heartbeat_interval=args.heartbeat, progress_interval=args.progress_interval,
        cloud_workers=args.cloud_workers, private_workers=args.private_workers,
        retention_seconds=args.retention, max_finished_tasks=args.max_finished_tasks,
        max_upload_bytes=args.max_upload_bytes)
    try:
        serve(config, args.host, args.port, generated_key=generated)
    except OSError as exc:
        return _fail(EXIT_USAGE, f"cannot listen on {args.host}:{args.port}: {exc.strerror}")
    except KeyboardInterrupt:
        pass
    return EXIT_OK


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _reachable(url: str) -> str | None:
    try:
        httpx.get(url + "/", timeout=10.0)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _check(args: argparse.Namespace) -> int:
    from harness.contract import load_lifecycle, load_limits
    from harness.findings import RunResult
    from harness.reference import ReferenceServerError, fresh_keys, reference_server
    from harness.report.results import new_run_id, now_rfc3339, write_results
    from harness.settings import ConfigError, load_settings
    from harness.suites.smoke import SmokeOptions, run_smoke

    flags = {k: getattr(args, k) for k in ("base_url", "api_keys", "rate_window", "max_tasks",
                                           "allow_hosts", "out_dir", "speed", "deadline")}
    try:
        settings = load_settings(flags)
    except ConfigError as exc:
        return _fail(EXIT_USAGE, str(exc))
    if args.faults and settings.base_url:
        return _fail(EXIT_USAGE, "--fault applies only to a self-started reference server "
                     "(drop --base-url)")
    lifecycle, limits = load_lifecycle(), load_limits()
    with ExitStack() as stack:
        if settings.base_url is None:
            keys = fresh_keys(2)
            window = settings.rate_window or 2.0
            _progress(f"starting the reference server (rate window {window:g} s, "
                      f"speed {settings.speed:g})")
            try:
                server = stack.enter_context(reference_server(
                    keys, rate_window=window, speed=settings.speed, faults=args.faults))
            except ReferenceServerError as exc:
                return _fail(EXIT_UNREACHABLE, str(exc))
            settings = settings.model_copy(update={"base_url": server.url, "api_keys": keys,
                                                   "rate_window": window})
        assert settings.base_url is not None
        if not settings.api_keys:
            return _fail(EXIT_USAGE, "no API key: pass --api-key, or set HARNESS_API_KEYS or "
                         "INFERENCE_API_KEY")
        if not _is_loopback(settings.base_url):
            host = urlsplit(settings.base_url).hostname or ""
            if host not in settings.allow_hosts:
                return _fail(EXIT_USAGE, f"{host} is not loopback and not allowed; suites create "
                             f"billable tasks: add --allow-host {host} to accept")
        problem = _reachable(settings.base_url)
        if problem is not None:
            return _fail(EXIT_UNREACHABLE, f"target {settings.base_url} unreachable: {problem}")
        if settings.rate_window is not None:
            limits = limits.model_copy(update={"window_seconds": settings.rate_window})
        run_id = new_run_id()
        result = RunResult(run_id=run_id, target=settings.base_url, started_at=now_rfc3339(),
                           settings={**settings.public(), "faults": args.faults})
        _progress(f"run {run_id} against {settings.base_url}")
        suite = run_smoke(settings.base_url, settings.api_keys, lifecycle, limits,
                          SmokeOptions(deadline_s=settings.deadline), progress=_progress)
        result.suites.append(suite)
        result.finished_at = now_rfc3339()
        run_dir = settings.out_dir / run_id
        path = write_results(result, run_dir, settings.api_keys)
    findings = result.findings
    for suite_result in result.suites:
        print(f"{suite_result.name}: {suite_result.status} ({len(suite_result.checks)} checks, "
              f"{len(suite_result.findings)} findings, {suite_result.duration_s:.1f} s)")
    for finding in findings:
        where = f" [task {finding.task_id}]" if finding.task_id else ""
        print(f"  {finding.check}{where}: {finding.message}")
    print(f"report: {path}")
    return EXIT_FINDINGS if findings else EXIT_OK
