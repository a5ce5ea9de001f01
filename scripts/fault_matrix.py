"""Finding counts per reference-server fault: `harness check` with a fixed seed, per fault.

    python scripts/fault_matrix.py --out matrix.json [--seed 7] [--only FAULT]...

Each fault runs the suites whose check ids docs/faults.md names as catching it; the clean
server runs all five. Writes {fault: {check: count}} as JSON and prints a line per fault.
Used to show a refactoring kept the fault matrix as strict as before (same seed, both trees).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

PREFIX_SUITE = {"ST": "smoke", "LC": "lifecycle", "CT": "contract", "RL": "ratelimit", "LD": "load",
                "AG": "agents"}


def faults_and_suites(doc: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in doc.read_text().splitlines():
        m = re.match(r"\| `([a-z0-9-]+)` \|.*\|(.*)\|\s*$", line)
        if not m:
            continue
        prefixes = sorted({p for p in re.findall(r"`(ST|LC|CT|RL|LD|AG)-", m.group(2))})
        out[m.group(1)] = [PREFIX_SUITE[p] for p in prefixes]
    return out


def run(fault: str | None, suites: list[str], seed: int, extra: list[str]) -> dict[str, int]:
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "harness", "check", "--seed", str(seed), "--out", out, *extra]
        for s in suites:
            cmd += ["--suite", s]
        if fault:
            cmd += ["--fault", fault]
        subprocess.run(cmd, capture_output=True, timeout=600)
        results = list(Path(out).glob("*/results.json"))
        if not results:
            return {"<no results>": 1}
        data = json.loads(results[0].read_text())
        counts = Counter(f["check"] for f in data["findings"])
        for name, suite in data["suites"].items():
            if suite["status"] == "error":
                counts[f"<{name} error>"] += 1
        return dict(sorted(counts.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description="Finding counts per reference-server fault.")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--only", action="append", default=[])
    parser.add_argument("--max-examples", default="10")
    args = parser.parse_args()
    table = faults_and_suites(Path(__file__).resolve().parents[1] / "docs" / "faults.md")
    extra = ["--max-examples", args.max_examples]
    result: dict[str, dict[str, int]] = {}
    todo = [(None, list(PREFIX_SUITE.values()))] + [(f, s) for f, s in table.items()]
    for fault, suites in todo:
        if args.only and (fault or "clean") not in args.only:
            continue
        name = fault or "clean"
        result[name] = run(fault, suites, args.seed, extra)
        print(f"{name:28} {','.join(suites):40} {result[name]}", flush=True)
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
