"""`python -m benchmarks [NAME ...] [--quick]`: run benchmarks, write reports/bench/."""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import agent_load, checker, conformance, get_task, load_user, streams
from benchmarks.common import (
    DEFAULT_OUT,
    SCHEMA_VERSION,
    BenchmarkError,
    command_line,
    environment,
    now_iso,
    read_results,
    write_result,
)
from harness.argtypes import positive_float, positive_int


@dataclass(frozen=True)
class Benchmark:
    """One benchmark module (its `Options`, `run`, `markdown`) and the flags that set its options."""

    name: str
    module: Any
    flags: dict[str, str] = field(default_factory=dict)  # argparse dest -> field of module.Options

    def run(self, args: argparse.Namespace) -> dict[str, Any]:
        options = self.module.Options.quick() if args.quick else self.module.Options()
        for dest, option in self.flags.items():
            value = getattr(args, dest, None)
            if value is not None:
                setattr(options, option, value)
        result: dict[str, Any] = self.module.run(options)
        return result

    def markdown(self, result: dict[str, Any]) -> list[str]:
        lines: list[str] = self.module.markdown(result)
        return lines


BENCHMARKS = {
    "get_task": Benchmark("get_task", get_task, {"rounds": "rounds", "seconds": "seconds",
                                                 "connections": "connections", "loadgen": "loadgen"}),
    "streams": Benchmark("streams", streams, {"streams": "streams", "hold": "hold_seconds"}),
    "checker": Benchmark("checker", checker, {"sizes": "sizes", "repeat": "repeat"}),
    "load_user": Benchmark("load_user", load_user, {"rounds": "rounds", "seconds": "seconds"}),
    "conformance": Benchmark("conformance", conformance),
    "agent_load": Benchmark("agent_load", agent_load),
}


def _sizes(text: str) -> list[int]:
    try:
        values = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError("a comma-separated list of positive integers")
    return values


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmarks of the reference server (figures are ratios to a baseline "
                    "measured in the same run, or latencies) and of the invariant checker "
                    "(observations/s, peak RSS). Results: reports/bench/.")
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"benchmarks to run: {', '.join(BENCHMARKS)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="short smoke version")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="result folder")
    parser.add_argument("--check-goals", action="store_true",
                        help="exit 3 when a goal is missed (default: report only)")
    group = parser.add_argument_group("get_task")
    group.add_argument("--rounds", type=positive_int, help="rounds per server (default 3)")
    group.add_argument("--seconds", type=positive_int, help="seconds per run (default 5)")
    group.add_argument("--connections", type=positive_int, help="connections (default 32)")
    group.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto",
                       help="load generator (auto: wrk when on PATH)")
    group = parser.add_argument_group("streams")
    group.add_argument("--streams", type=positive_int, help="open streams (default 2000)")
    group.add_argument("--hold", type=positive_float, help="seconds to hold them (default 12)")
    group = parser.add_argument_group("checker")
    group.add_argument("--sizes", type=_sizes,
                       help="history sizes in observations, comma-separated (default 10000,100000,1000000)")
    group.add_argument("--repeat", type=positive_int, help="timed runs per child and round (default 3)")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r} (choose from {', '.join(BENCHMARKS)})")
    args.names = list(dict.fromkeys(args.names)) or list(BENCHMARKS)
    return args


def render_latest(out_dir: Path, ran: list[str]) -> Path:
    results = read_results(out_dir, list(BENCHMARKS))
    lines = ["# Benchmarks", "",
             "Written by `make bench` (`python -m benchmarks`). Ratios compare against a baseline "
             "measured in the same run; absolute rates depend on the (shared, noisy) machine.", ""]
    for name, bench in BENCHMARKS.items():
        result = results.get(name)
        lines.append(f"## {name}")
        lines.append("")
        if result is None:
            lines += ["not run yet", ""]
            continue
        stale = "" if name in ran else " (not re-run by the last invocation)"
        lines.append(f"{result.get('title', name)} — {result.get('started_at')}, "
                     f"`{result.get('command')}`{stale}")
        lines.append("")
        if result.get("status") == "error":
            lines += [f"**error**: {result.get('error')}", ""]
            continue
        lines += ["| figure | value |", "|---|---|", *bench.markdown(result)]
        if result.get("problems"):
            lines += ["", "Problems: " + "; ".join(result["problems"])]
        lines.append("")
    path = out_dir / "latest.md"
    path.write_text("\n".join(lines))
    return path


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    env = environment()
    exit_code = 0
    for name in args.names:
        bench = BENCHMARKS[name]
        print(f"benchmark {name}: running{' (quick)' if args.quick else ''}", flush=True)
        start = time.monotonic()
        base = {"schema_version": SCHEMA_VERSION, "benchmark": name, "command": command_line(),
                "quick": args.quick, "environment": env}
        try:
            result = {**base, **bench.run(args), "status": "ok"}
        except (BenchmarkError, OSError) as exc:
            result = {**base, "status": "error", "error": str(exc), "started_at": now_iso()}
            exit_code = max(exit_code, 1)
        except Exception as exc:  # a crash is recorded too, then reported
            result = {**base, "status": "error", "error": f"{type(exc).__name__}: {exc}",
                      "traceback": traceback.format_exc(), "started_at": now_iso()}
            exit_code = max(exit_code, 1)
        result["elapsed_s"] = round(time.monotonic() - start, 1)
        path = write_result(args.out, name, result)
        if result["status"] == "error":
            print(f"benchmark {name}: ERROR {result['error']}", file=sys.stderr)
        else:
            for line in bench.markdown(result):
                print("  " + line.strip("| ").replace(" | ", ": ", 1))
            if not result.get("valid", True):
                exit_code = max(exit_code, 1)
                print(f"  INVALID: {'; '.join(result.get('problems', []))}")
            goal = result.get("goal", {})
            if args.check_goals and not goal.get("met"):
                exit_code = max(exit_code, 3)
        print(f"benchmark {name}: {result['status']} in {result['elapsed_s']} s -> {path}",
              flush=True)
    latest = render_latest(args.out, args.names)
    print(f"summary -> {latest}")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
