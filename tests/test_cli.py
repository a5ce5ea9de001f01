"""The `harness` command as users run it: a real process, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.history import read_history
from harness.net.reference import ReferenceServer
from tests.conftest import StartServer
from tests.files import file_text, folder_texts


def harness(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    base = {"PATH": "/usr/bin:/bin", "HOME": str(cwd or Path.cwd())}
    if "PYTHONPATH" in os.environ:  # the tree under test, when it is not the installed one
        base["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True,
                          env={**base, **(env or {})}, cwd=cwd, timeout=timeout)


def test_help_lists_subcommands_and_exit_codes() -> None:
    result = harness("--help")
    assert result.returncode == 0
    assert "serve" in result.stdout and "check" in result.stdout and "3 target" in result.stdout


@pytest.mark.parametrize("args", [
    ["--bogus"], ["check", "--bogus"], ["serve", "--speed", "0"], ["serve", "--speed", "fast"],
    ["serve", "--port", "70000"], ["check", "--rate-window", "-1"], ["check", "--max-tasks", "0"],
    ["nosuchcommand"], [],
])
def test_usage_errors_are_one_line_and_exit_2(args: list[str]) -> None:
    result = harness(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("harness") and "error:" in lines[0]


def test_unknown_fault_is_a_usage_error() -> None:
    result = harness("serve", "--port", "0", "--fault", "no-such-fault")
    assert result.returncode == 2 and "unknown fault 'no-such-fault'" in result.stderr
    # The same command without the suites (what tests and harness.net.reference start).
    alone = subprocess.run([sys.executable, "-m", "harness.server", "--port", "0", "--fault",
                            "no-such-fault"], capture_output=True, text=True, timeout=30)
    assert alone.returncode == 2 and "unknown fault 'no-such-fault'" in alone.stderr


def test_check_on_a_self_started_server_is_clean(tmp_path: Path) -> None:
    result = harness("check", "--out", str(tmp_path / "out"), "--duration", "3s", "--max-examples", "2",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    (run_dir,) = (tmp_path / "out").iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    assert results["schema_version"] == 1 and results["findings"] == []
    assert results["suites"]["smoke"]["status"] == "passed"
    assert [name for name, suite in results["suites"].items() if suite["status"] == "passed"] == [
        "contract", "smoke", "agents", "lifecycle", "load", "ratelimit"]
    deadline_checks = {"contract": "CT-DEADLINE", "smoke": "ST-DEADLINE", "lifecycle": "LC-DEADLINE",
                       "load": "LD-DEADLINE", "ratelimit": "RL-DEADLINE", "agents": "AG-DEADLINE"}
    for name, check in deadline_checks.items():
        assert check in results["suites"][name]["checks"], name  # ended in time: passed
    assert {"summary.md", "junit.xml", "index.html", "observations.jsonl.gz"} <= {
        p.name for p in run_dir.iterdir()}
    # Each observation stored once: no plain, per-phase or per-worker copy beside the run's history.
    assert [p.name for p in run_dir.rglob("observations*")] == ["observations.jsonl.gz"]
    assert sum(p.stat().st_size for p in run_dir.rglob("*") if p.is_file()) < 5_000_000
    # The generated keys (inf_...) appear in no file of the run folder.
    assert "inf_" not in every_file_text(run_dir).replace("inf_harness_not_a_real_key", "")
    assert results["target"].startswith("http://127.0.0.1:")
    assert "smoke 1/" in result.stderr  # progress on stderr
    # The history holds every suite's requests, the contract suite's (without a task) too, and
    # the lifecycle checker finds nothing in them.
    history = run_dir / "observations.jsonl.gz"
    observers = {o.observer for o in read_history(history)}
    assert {"contract", "smoke", "runner"} <= observers, sorted(observers)
    checked = harness("check-history", str(history), cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert " 0 findings" in checked.stdout


def test_check_with_a_fault_exits_1_and_keeps_keys_out(tmp_path: Path, server: ReferenceServer) -> None:
    result = harness("check", "--out", str(tmp_path / "out"), "--fault", "cross-key-read",
                     "--suite", "smoke", "--suite", "lifecycle", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "ST-ISOLATION" in result.stdout
    (run_dir,) = (tmp_path / "out").iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    assert {f["check"] for f in results["findings"]} == {"ST-ISOLATION", "LC-ISOLATION"}
    assert results["settings"]["api_key_count"] == 2 and "api_keys" not in results["settings"]
    # No key in any file of the run folder (history, Locust stats and renders included).
    assert "inf_" not in every_file_text(run_dir).replace("inf_harness_not_a_real_key", "")


def every_file_text(run_dir: Path) -> str:
    return "\n".join(folder_texts(run_dir).values())


def test_a_faulty_target_given_by_url_shows_in_all_four_outputs(tmp_path: Path,
                                                                 start_server: StartServer) -> None:
    with start_server(faults=["upload-bytes-altered"]) as srv:
        env = {"HARNESS_API_KEYS": ",".join(srv.keys)}
        result = harness("check", "--base-url", srv.url, "--rate-window", "2", "--suite", "smoke",
                         "--out", str(tmp_path / "out"), env=env, cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    (run_dir,) = (tmp_path / "out").iterdir()
    for name in ("results.json", "summary.md", "junit.xml", "index.html"):
        assert "ST-UPLOAD-ROUNDTRIP" in (run_dir / name).read_text(), name
    har = json.loads((run_dir / "failures.har").read_text())
    assert any(e["comment"].startswith("ST-UPLOAD-ROUNDTRIP") for e in har["log"]["entries"])
    text = every_file_text(run_dir)
    assert all(key not in text for key in srv.keys)


def test_check_against_a_given_url(tmp_path: Path, server: ReferenceServer) -> None:
    env = {"HARNESS_API_KEYS": ",".join(server.keys)}
    result = harness("check", "--base-url", server.url, "--rate-window", "2", "--suite", "smoke",
                     "--out", str(tmp_path / "out"),
                     env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    text = next((tmp_path / "out").iterdir()).joinpath("results.json").read_text()
    assert all(key not in text for key in server.keys)


def test_unreachable_target_exits_3(tmp_path: Path) -> None:
    result = harness("check", "--base-url", "http://127.0.0.1:9", "--api-key", "inf_x", cwd=tmp_path)
    assert result.returncode == 3 and "unreachable" in result.stderr


def test_missing_key_and_foreign_host_exit_2(tmp_path: Path) -> None:
    no_key = harness("check", "--base-url", "http://127.0.0.1:9", cwd=tmp_path)
    assert no_key.returncode == 2 and "no API key" in no_key.stderr
    foreign = harness("check", "--base-url", "https://api.example.com", "--api-key", "inf_x", cwd=tmp_path)
    assert foreign.returncode == 2 and "--allow-host api.example.com" in foreign.stderr
    assert "inf_x" not in foreign.stderr


def test_bad_toml_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "harness.toml").write_text("max_tasks = 'many'\n")
    result = harness("check", cwd=tmp_path)
    assert result.returncode == 2 and "max_tasks" in result.stderr


def test_lifecycle_command_writes_a_history_and_check_history_reads_it(tmp_path: Path) -> None:
    result = harness("lifecycle", "--tasks", "6", "--clients", "3", "--seed", "1",
                     "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    (run_dir,) = (tmp_path / "out").iterdir()
    history = run_dir / "observations.jsonl.gz"
    results = json.loads((run_dir / "results.json").read_text())
    assert list(results["suites"]) == ["lifecycle"]
    assert results["suites"]["lifecycle"]["metrics"]["observations"] == len(file_text(history).splitlines())
    again = harness("check-history", str(history), cwd=tmp_path)
    assert again.returncode == 0 and "0 findings" in again.stdout


def test_check_history_finds_and_refuses(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"task":"t","observer":"o","channel":"get","send_ns":1,"recv_ns":2,"wall":0,'
                   '"http":200,"status":77}\n')
    found = harness("check-history", str(bad), cwd=tmp_path)
    assert found.returncode == 1 and "LC-UNKNOWN-STATUS" in found.stdout
    assert harness("check-history", str(tmp_path / "missing.jsonl"), cwd=tmp_path).returncode == 2
    junk = tmp_path / "junk.jsonl"
    junk.write_text("not json\n{}\n")
    result = harness("check-history", str(junk), cwd=tmp_path)
    assert result.returncode == 2 and "line 1" in result.stderr


@pytest.mark.parametrize("command", ["check", "smoke", "lifecycle", "load", "ratelimit", "contract"])
def test_a_wrong_key_is_exit_2_for_every_suite(tmp_path: Path, server: ReferenceServer, command: str) -> None:
    result = harness(command, "--base-url", server.url, "--api-key", "inf_wrong", "--out", str(tmp_path),
                     cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "the target refused the API key (HTTP 401" in result.stderr
    assert not any(tmp_path.iterdir()), "no run folder for a run that never started"


def test_a_second_wrong_key_is_named(tmp_path: Path, server: ReferenceServer) -> None:
    result = harness("smoke", "--base-url", server.url, "--api-key", server.keys[0], "--api-key", "inf_x",
                     "--out", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 2 and "refused API key #2" in result.stderr


def test_a_url_that_is_not_the_api_root_is_exit_2(tmp_path: Path, server: ReferenceServer) -> None:
    result = harness("smoke", "--base-url", server.url + "/files", "--api-key", server.keys[0],
                     "--out", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 2 and "is the base URL the API's root?" in result.stderr


@pytest.mark.parametrize(("url", "why"), [
    ("http://[::1", "not a valid URL"), ("http://localhost:abc", "not a valid URL"),
    ("ftp://x", "must start with http"), ("http://", "names no host"),
])
def test_a_bad_url_is_one_line_and_exit_2(tmp_path: Path, url: str, why: str) -> None:
    result = harness("check", "--base-url", url, "--api-key", "k", cwd=tmp_path)
    assert result.returncode == 2 and why in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_an_empty_base_url_variable_never_tests_the_reference_server(tmp_path: Path) -> None:
    result = harness("check", "--suite", "smoke", env={"HARNESS_BASE_URL": ""}, cwd=tmp_path)
    assert result.returncode == 2 and "HARNESS_BASE_URL is set but empty" in result.stderr
    assert "starting the reference server" not in result.stderr


def test_warnings_fail_the_run_only_when_asked_and_unrun_checks_are_skipped(
        tmp_path: Path, start_server: StartServer) -> None:
    # --discover on a 1 s window against the contract's 60 s: one RL-DISCOVER warning, nothing else.
    with start_server(rate_window=1.0) as srv:
        args = ["ratelimit", "--base-url", srv.url, "--api-key", srv.keys[0], "--api-key", srv.keys[1],
                "--discover", "--group", "upload"]
        default = harness(*args, "--out", str(tmp_path / "a"), cwd=tmp_path)
        strict = harness(*args, "--out", str(tmp_path / "b"), "--fail-on", "warning", cwd=tmp_path)
    assert default.returncode == 0, default.stdout + default.stderr
    assert strict.returncode == 1, strict.stdout + strict.stderr
    (run_dir,) = (tmp_path / "a").iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    assert {f["check"] for f in results["findings"]} == {"RL-DISCOVER"}
    assert {f["severity"] for f in results["findings"]} == {"warning"}
    suite = results["suites"]["ratelimit"]
    assert "RL-GROUP-ISOLATION" in suite["skipped"] and "RL-GROUP-ISOLATION" not in suite["checks"]
    import xml.etree.ElementTree as ET

    cases = {c.get("name"): c for c in ET.parse(run_dir / "junit.xml").iter("testcase")}
    assert cases["RL-GROUP-ISOLATION"].find("skipped") is not None
    assert cases["RL-DISCOVER"].find("failure") is not None


def test_the_verdict_of_a_run() -> None:
    from harness.cli import _verdict
    from harness.findings import Finding, RunResult, SuiteResult

    def run(*suites: SuiteResult, interrupted: bool = False) -> RunResult:
        return RunResult(run_id="r", target="http://t", started_at="now", suites=list(suites),
                         interrupted=interrupted)

    warning = Finding(check="RL-DISCOVER", severity="warning", suite="ratelimit", message="m")
    info = warning.model_copy(update={"severity": "info"})
    error = warning.model_copy(update={"severity": "error"})
    failed = SuiteResult(name="ratelimit", status="failed", findings=[warning, info])
    assert _verdict(run(failed), "error") == 0
    assert _verdict(run(failed), "warning") == 1 and _verdict(run(failed), "info") == 1
    assert _verdict(run(failed.model_copy(update={"findings": [info]})), "warning") == 0
    assert _verdict(run(failed.model_copy(update={"findings": [error]})), "error") == 1
    crashed = SuiteResult(name="load", status="error", error="ValueError: x")
    assert _verdict(run(failed, crashed), "error") == 4
    assert _verdict(run(failed, interrupted=True), "error") == 130


def test_ctrl_c_stops_children_and_writes_the_partial_run(tmp_path: Path) -> None:
    import os
    import signal
    import time

    process = subprocess.Popen([sys.executable, "-m", "harness", "check", "--suite", "smoke", "--suite",
                                "lifecycle", "--out", str(tmp_path / "out")], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}, start_new_session=True)
    try:
        assert process.stderr is not None
        deadline = time.monotonic() + 60
        for line in process.stderr:  # like a terminal: Ctrl-C reaches the whole process group
            if "suite lifecycle: started" in line:
                os.killpg(process.pid, signal.SIGINT)
                break
            assert time.monotonic() < deadline, "the lifecycle suite never started"
        code = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert code == 130
    end = time.monotonic() + 10
    while time.monotonic() < end:  # every child (the reference server) ends with the group
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("children of the interrupted run are still running")
    (run_dir,) = (tmp_path / "out").iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    assert results["interrupted"] is True and results["finished_at"] is None
    assert results["suites"]["smoke"]["status"] == "passed"
    assert results["suites"]["lifecycle"]["error"] == "interrupted by the user"
    assert (run_dir / "index.html").is_file() and (run_dir / "summary.md").is_file()


def test_load_reads_its_budget_and_options_from_the_environment_and_the_file(
        tmp_path: Path, start_server: StartServer) -> None:
    (tmp_path / "harness.toml").write_text('[load]\nscenarios = ["run_wait"]\nduration = "2s"\n'
                                           "users = 3\n")
    with start_server(rate_window=2.0) as srv:
        env = {"HARNESS_API_KEYS": ",".join(srv.keys), "HARNESS_BASE_URL": srv.url,
               "HARNESS_RATE_WINDOW": "2", "HARNESS_MAX_TASKS": "8", "HARNESS_OUT_DIR": "out"}
        result = harness("load", env=env, cwd=tmp_path)
    assert result.returncode in (0, 1), result.stdout + result.stderr
    (run_dir,) = (tmp_path / "out").iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    settings = results["settings"]
    assert settings["users"] == 3 and settings["scenarios"] == ["run_wait"] and settings["duration"] == 2.0
    created = results["suites"]["load"]["metrics"]["tasks_created"]
    # The budget of 8 covers the preflight's runs too (one per mapped app): the load suite got 3.
    assert settings["preflight_runs"] == 5 and 1 <= created <= 3


def test_check_compares_with_a_baseline_at_its_end(tmp_path: Path, server: ReferenceServer) -> None:
    env = {"HARNESS_API_KEYS": ",".join(server.keys)}
    args = ["check", "--base-url", server.url, "--rate-window", "2", "--suite", "smoke"]
    first = harness(*args, "--out", str(tmp_path / "a"), env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    (baseline,) = (tmp_path / "a").iterdir()
    second = harness(*args, "--out", str(tmp_path / "b"), "--baseline", str(baseline), env=env, cwd=tmp_path)
    assert second.returncode == 0 and f"compared with {baseline}: no regression" in second.stdout
    (run_dir,) = (tmp_path / "b").iterdir()
    assert json.loads((run_dir / "compare.json").read_text())["regressed"] is False
    assert "no load numbers to compare" in (run_dir / "compare.md").read_text()
    missing = harness(*args, "--baseline", str(tmp_path / "nowhere"), env=env, cwd=tmp_path)
    assert missing.returncode == 2 and "not a run folder" in missing.stderr


def test_quiet_prints_only_the_summary(tmp_path: Path, server: ReferenceServer) -> None:
    env = {"HARNESS_API_KEYS": ",".join(server.keys)}
    result = harness("smoke", "--base-url", server.url, "--rate-window", "2", "-q", "--out",
                     str(tmp_path / "out"), env=env, cwd=tmp_path)
    assert result.returncode == 0 and "smoke: passed" in result.stdout
    assert "suite smoke: started" not in result.stderr and result.stderr.strip() == ""
    both = harness("smoke", "-q", "-v", cwd=tmp_path)
    assert both.returncode == 2 and "not allowed with argument" in both.stderr
