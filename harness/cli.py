"""The `harness` command: parse, call the runner, print a summary, set the exit code."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from harness import __version__
from harness.argtypes import duration_arg, positive_float, positive_int
from harness.exit_codes import EPILOG, ExitCode
from harness.findings import SEVERITY_RANK, RunResult
from harness.redaction import redact
from harness.server.command import add_serve_arguments, run_serve
from harness.suites.registry import SUITES

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = ExitCode.OK, ExitCode.FINDINGS, ExitCode.USAGE
SUITE_NAMES = tuple(SUITES)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _add_target_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("target options")
    group.add_argument("--config", type=Path, metavar="FILE",
                       help="settings file (default ./harness.toml when it exists): the target, "
                       "budgets, [apps.<role>] tables naming the target's own apps, [thresholds]")
    group.add_argument("--base-url", help="target API; without it a reference server is started "
                       "on a free loopback port (env HARNESS_BASE_URL)")
    group.add_argument("--api-key", action="append", dest="api_keys",
                       metavar="KEY", help="repeatable; the first is primary, the second is used "
                       "for isolation checks (env HARNESS_API_KEYS, comma-separated, or "
                       "INFERENCE_API_KEY)")
    group.add_argument("--rate-window", type=duration_arg, metavar="S",
                       help="the target's rate-limit window in seconds when it is not the "
                       "contract's 60 (a self-started reference server uses 2)")
    group.add_argument("--max-tasks", type=positive_int, metavar="N",
                       help="budget of billable runs the suites may create (default 500; 20,000 on "
                       "a self-started reference server)")
    group.add_argument("--allow-host", action="append", dest="allow_hosts",
                       metavar="HOST", help="non-loopback host that task-creating suites may "
                       "target (repeatable)")
    group.add_argument("--allow-file-host", action="append", dest="allow_file_hosts",
                       metavar="HOST", help="a host besides the target's where its upload URLs and file "
                       "URIs may be fetched (storage elsewhere; repeatable)")
    tls = group.add_mutually_exclusive_group()
    tls.add_argument("--ca-bundle", type=Path, metavar="FILE",
                     help="PEM file of a CA to trust when verifying the target's TLS certificate")
    tls.add_argument("--insecure", action="store_true", default=None,
                     help="do not verify the target's TLS certificate (said in the report's settings)")
    group.add_argument("--deadline", type=duration_arg, metavar="S",
                       help="per-task deadline in seconds (default 60)")
    group.add_argument("--suite-deadline", type=duration_arg, metavar="T",
                       help="longest one suite may take (default 1h): past it the suite stops with "
                       "a <ID>-DEADLINE finding and the run goes on")
    group.add_argument("--run-deadline", type=duration_arg, metavar="T",
                       help="longest the whole run may take, preflight included (default 2h); "
                       "suites it leaves no time for are skipped; the run folder is always written")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="harness", description="Conformance, lifecycle, rate-limit and load "
                     "harness for the inference.sh task API.",
                     epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"harness {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = sub.add_parser("serve", help="run the reference server")
    add_serve_arguments(serve)

    check = sub.add_parser("check", help="run every suite against a target and write a report")
    _add_target_options(check)
    check.add_argument("--suite", action="append", dest="suites", choices=SUITE_NAMES,
                       help="run only this suite (repeatable; default: all)")
    _add_run_options(check)
    for suite in SUITES.values():
        suite.add_arguments(check, standalone=False)

    for suite in SUITES.values():
        command = sub.add_parser(suite.name, help=suite.help)
        _add_target_options(command)
        _add_run_options(command)
        suite.add_arguments(command, standalone=True)

    init = sub.add_parser("init", help="write a commented harness.toml (settings and the [apps.<role>] "
                          "tables that name a real target's apps)")
    init.add_argument("path", nargs="?", type=Path, default=Path("harness.toml"), metavar="FILE",
                      help="where to write it (default ./harness.toml)")
    init.add_argument("--base-url", default="https://api.example.com", help="the target to write in")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")

    compare = sub.add_parser("compare", help="compare two run folders: per endpoint and percentile "
                             "(noise-aware), checks and findings; writes compare.md and compare.json")
    compare.add_argument("baseline_run", type=Path, metavar="BASELINE_RUN")
    compare.add_argument("new_run", type=Path, metavar="NEW_RUN")
    _add_regression_gate(compare)
    compare.add_argument("--out", type=Path, metavar="DIR",
                         help="where to write compare.md and compare.json (default NEW_RUN)")

    report = sub.add_parser("report", help="render summary.md, junit.xml and index.html of a run "
                            "folder again from its results.json and its history")
    report.add_argument("run_dir", type=Path, metavar="RUN_DIR")

    history = sub.add_parser("check-history", help="check a history file (observations.jsonl, or .gz)")
    history.add_argument("file", type=Path, metavar="FILE")
    history.add_argument("--lifecycle", type=Path, metavar="FILE",
                         help="lifecycle contract (default contracts/lifecycle.yaml)")
    history.add_argument("--heartbeat-bound", type=positive_float, default=15.0, metavar="S",
                         help="longest allowed silence on a stream (default 15)")
    return parser


def _add_regression_gate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-regression", action="append", dest="max_regression", metavar="STAT=N%",
                        help="repeatable gate: how far a statistic may move the wrong way, e.g. "
                        "p95=10%% or rps=-5%% (default p95=10%%, p99=20%%, rps=-10%%)")


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out-dir", "--out", dest="out_dir", type=Path, metavar="DIR",
                        help="parent folder of run folders (default reports/)")
    parser.add_argument("--speed", type=positive_float, metavar="F",
                        help="speed of a self-started reference server (default 10)")
    parser.add_argument("--fault", action="append", dest="faults", metavar="NAME",
                        help="start the self-started reference server with this fault "
                        "(to see the harness catch it)")
    parser.add_argument("--lifecycle", type=Path, metavar="FILE",
                        help="lifecycle contract (default contracts/lifecycle.yaml; "
                        "contracts/lifecycle-docs.yaml checks the documented table)")
    parser.add_argument("--fail-on", choices=("error", "warning", "info"),
                        help="the lowest finding severity that fails the run (exit 1); lower ones "
                        "are reported only (default error)")
    noise = parser.add_mutually_exclusive_group()
    noise.add_argument("-q", "--quiet", action="store_true", default=None,
                       help="progress: warnings and errors only (the summary is still printed)")
    noise.add_argument("-v", "--verbose", action="store_true", default=None,
                       help="progress: also debug lines (e.g. the load processes' own log); on a "
                       "terminal a live line shows suite, phase, requests, rate, errors and p95")
    parser.add_argument("--baseline", type=Path, metavar="RUN_DIR",
                        help="compare this run with an earlier run folder at its end (compare.md, "
                        "compare.json in the run folder); a regression exits 1")
    _add_regression_gate(parser)
    parser.add_argument("--seed", type=int, help="seed of every random choice (the lifecycle plan, "
                        "schemathesis' cases): the same seed, contract and versions send the same "
                        "cases (default: random, written to results.json)")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return run_serve(args)
    if args.command == "check-history":
        return _check_history(args)
    if args.command == "report":
        return _report(args)
    if args.command == "init":
        return _init(args)
    if args.command == "compare":
        return _compare(args)
    if args.command in SUITES:
        return _run(args, [args.command])
    return _run(args, list(SUITE_NAMES))


def _fail(code: int, message: str) -> int:
    print(f"harness: error: {redact(message)}", file=sys.stderr)
    return code


def _settings(args: argparse.Namespace) -> Any:
    from harness.settings import load_settings, setting_names

    config = getattr(args, "config", None)
    return load_settings({name: getattr(args, name, None) for name in setting_names()},
                         toml_path=config, required=config is not None)


def _run(args: argparse.Namespace, suites: list[str]) -> int:
    from harness.runner import RunError, execute
    from harness.settings import ConfigError

    try:
        settings = _settings(args)
        if args.command in SUITES:
            code = SUITES[args.command].standalone(args, settings)
            if code is not None:
                return code
    except ConfigError as exc:
        return _fail(EXIT_USAGE, str(exc))
    if args.command not in SUITES:
        suites = list(settings.suites) or suites
    options = {name: SUITES[name].options(settings) for name in suites}
    from harness.terminal import Terminal

    try:
        with Terminal(verbosity=-1 if settings.quiet else 1 if settings.verbose else 0) as terminal:
            result, run_dir = execute(settings, suites, terminal.message, options)
    except RunError as exc:
        return _fail(exc.code, str(exc))
    except KeyboardInterrupt:
        return _fail(ExitCode.INTERRUPTED, "interrupted (the run folder, if any, may be incomplete)")
    except Exception as exc:  # the harness itself failed: one line, never a traceback or a key
        return _fail(ExitCode.CRASHED, f"the harness failed: {type(exc).__name__}: {exc}")
    billable = int(result.settings.get("preflight_runs", 0)) + sum(
        int(s.metrics.get("tasks_created", 0)) for s in result.suites)
    lines = []
    for suite in result.suites:
        extra = f": {suite.error}" if suite.error else ""
        lines.append(f"{suite.name}: {suite.status} ({len(suite.checks)} checks, {len(suite.findings)} "
                     f"findings, {suite.duration_s:.1f} s){extra}")
    for finding in result.findings:
        where = f" [task {finding.task_id}]" if finding.task_id else ""
        lines.append(f"  {finding.check}{where}: {finding.message}")
    lines += [f"billable runs created: {billable}", f"report: {run_dir}"]
    code = _verdict(result, settings.fail_on)
    if settings.baseline is not None and not result.interrupted:
        regressed, line = _compare_runs(settings.baseline, run_dir, settings.max_regression, run_dir)
        lines.append(line)
        if regressed and code == EXIT_OK:
            code = EXIT_FINDINGS
    print(redact("\n".join(lines)))
    return code


def _compare_runs(baseline: Path, new: Path, gates: list[str], out: Path) -> tuple[bool, str]:
    """Compare two run folders, write compare.* into `out`; (regressed, one line for the terminal)."""
    from harness.compare.gates import DEFAULT_GATES, parse_gates
    from harness.compare.judge import compare
    from harness.compare.render import write_comparison
    from harness.report.results import read_results

    comparison = compare(read_results(baseline / "results.json"), read_results(new / "results.json"),
                         parse_gates([*DEFAULT_GATES, *gates]))
    written = write_comparison(comparison, out)
    moved = len(comparison.regressions) + len(comparison.broken_checks)
    what = f"{moved} regression(s)" if comparison.regressed else "no regression"
    return comparison.regressed, f"compared with {baseline}: {what}; {written[0]}"


def _compare(args: argparse.Namespace) -> int:
    from harness.compare.gates import GateError
    from harness.report.results import ResultsError

    for folder in (args.baseline_run, args.new_run):
        if not (folder / "results.json").is_file():
            return _fail(EXIT_USAGE, f"{folder}: not a run folder (no results.json)")
    try:
        regressed, line = _compare_runs(args.baseline_run, args.new_run, args.max_regression or [],
                                        args.out or args.new_run)
    except (GateError, ResultsError) as exc:
        return _fail(EXIT_USAGE, str(exc))
    print(line)
    return EXIT_FINDINGS if regressed else EXIT_OK


def _verdict(result: RunResult, fail_on: str) -> int:
    """The exit code of a run: interrupted, a suite that could not finish, findings, or clean."""
    if result.interrupted:
        return ExitCode.INTERRUPTED
    if any(s.status == "error" for s in result.suites):
        return ExitCode.CRASHED
    bar = SEVERITY_RANK[fail_on]
    if any(SEVERITY_RANK[f.severity] >= bar for f in result.findings):
        return EXIT_FINDINGS
    return EXIT_OK


def _init(args: argparse.Namespace) -> int:
    from harness.init_config import config_template

    if args.path.exists() and not args.force:
        return _fail(EXIT_USAGE, f"{args.path} exists (--force to overwrite)")
    try:
        args.path.write_text(config_template(args.base_url))
    except OSError as exc:
        return _fail(EXIT_USAGE, f"cannot write {args.path}: {exc.strerror}")
    print(f"wrote {args.path}: uncomment the [apps.<role>] tables and name your own apps")
    return EXIT_OK


def _report(args: argparse.Namespace) -> int:
    from harness.report.render import render_run
    from harness.report.results import ResultsError

    try:
        written = render_run(args.run_dir)
    except (FileNotFoundError, ResultsError) as exc:
        return _fail(EXIT_USAGE, str(exc))
    for path in written:
        print(path)
    return EXIT_OK


def _check_history(args: argparse.Namespace) -> int:
    from harness.checks.lifecycle import InvariantOptions, check_history
    from harness.contract import load_lifecycle
    from harness.history import HistoryError, read_records

    if not args.file.is_file():
        return _fail(EXIT_USAGE, f"no such history file: {args.file}")
    try:
        lifecycle = load_lifecycle(args.lifecycle) if args.lifecycle else load_lifecycle()
        report = check_history(read_records(args.file), lifecycle,
                               InvariantOptions(heartbeat_bound_s=args.heartbeat_bound))
    except (HistoryError, OSError, ValueError) as exc:
        return _fail(EXIT_USAGE, f"{args.file}: {exc}")
    metrics = report.metrics
    print(f"{metrics['observations']} observations, {metrics['tasks']} tasks, "
          f"{metrics['indeterminate']} indeterminate, {len(report.findings)} findings")
    for finding in report.findings:
        where = f" [task {finding.task_id}]" if finding.task_id else ""
        print(f"  {finding.check}{where}: {finding.message}")
    return EXIT_FINDINGS if report.findings else EXIT_OK
