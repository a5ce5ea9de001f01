"""The report package: results.json against its schema, junit.xml against the JUnit XSD,
summary.md, index.html in headless Chromium, and no API key in any file of a run folder."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from harness.contract import load_lifecycle
from harness.findings import Finding, RunResult, SuiteResult
from harness.history import Channel, HistoryWriter, Observation
from harness.report.render import lifecycle_of, render_result, render_run
from harness.report.results import SCHEMA_PATH, ResultsError, read_results, write_results
from harness.report.stats import collect
from harness.report.summary import MAX_FINDINGS
from tests.files import folder_texts

DATA = Path(__file__).parents[1] / "data"
JUNIT_XSD = DATA / "junit-10.xsd"
# Fake keys shaped like real ones; they must never reach any file of a run folder.
KEY = "inf_k3yPr1maryZZ9xQwErTy00aa"
OTHER_KEY = "inf_k3ySec0ndYY8wPoIuYt11bb"
TARGET = "http://127.0.0.1:8765"
CHART_IDS = ("chart-latency", "chart-throughput", "chart-ratelimit", "chart-transitions", "chart-ttt")
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_ARGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync")


def _curl(method: str, path: str, body: dict[str, Any] | None = None) -> str:
    command = f"curl -sS -i -X {method} '{TARGET}{path}' -H \"Authorization: Bearer $INFERENCE_API_KEY\""
    if body is not None:
        command += f" -H 'Content-Type: application/json' -d '{json.dumps(body)}'"
    return command


ENDPOINTS = [
    {"endpoint": "get_task", "requests": 4289, "rps": 141.0, "errors": 0, "p50": 0.668, "p90": 2.35,
     "p95": 3.22, "p99": 5.14, "max": 34.3},
    {"endpoint": "stream_sse", "requests": 686, "rps": 22.5, "errors": 2, "p50": 1.2, "p90": 2.0,
     "p95": 2.5, "p99": 4.0, "max": 9.0, "ttfe_p50": 3.0, "ttfe_p95": 7.5, "terminal_p50": 180.0,
     "terminal_p95": 410.0},
]
AGENT_ENDPOINTS = [
    {"endpoint": "agent_run", "requests": 82, "rps": 20.5, "errors": 0, "p50": 0.783, "p90": 3.69,
     "p95": 6.11, "p99": 6.68, "max": 8.84},
    {"endpoint": "chat_stream", "requests": 82, "rps": 20.5, "errors": 0, "p50": 1.1, "p90": 2.2,
     "p95": 2.9, "p99": 4.1, "max": 5.0, "first_delta_p50": 57.2, "first_delta_p95": 65.3,
     "delta_gap_p50": 5.35, "delta_gap_p95": 7.33, "turn_p50": 89.2, "turn_p95": 127.0},
]


def make_result(extra_findings: int = 0) -> RunResult:
    """A run with findings in every suite, one suite in error, and keys where they must not stay."""
    smoke = SuiteResult(
        name="smoke", status="failed",
        checks=["ST-AUTH-REQUIRED", "ST-RUN-COMPLETES", "ST-POLL-ORDER", "ST-CANCEL"],
        metrics={"tasks_created": 9, "requests": 181, "poll_interval_s": 0.05},
        duration_s=12.402,
        findings=[
            Finding(check="ST-POLL-ORDER", suite="smoke", task_id="tsk_0005",
                    message="infsh/sleep: status went from 7 (running) to 3 (dispatched)",
                    evidence={"statuses_seen": [1, 2, 3, 7, 3], "request": f"GET {TARGET}/tasks/tsk_0005",
                              "status": 200, "content_type": "application/json",
                              "body": '{"success":true,"data":{"id":"tsk_0005","status":3}}'},
                    repro=_curl("GET", "/tasks/tsk_0005")),
            Finding(check="ST-AUTH-REQUIRED", suite="smoke",
                    message="an unknown key got 200 | expected 401 <with a problem body>",
                    evidence={"request": f"GET {TARGET}/workers", "status": 200,
                              "request_headers": {"Authorization": f"Bearer {KEY}"},
                              "body": "binary\x00junk\x1b[0m and <script>alert(1)</script>"},
                    repro=f"curl -sS -i '{TARGET}/workers' -H 'Authorization: Bearer {KEY}'"),
        ])
    conformance = SuiteResult(
        name="conformance", status="error",
        checks=["CT-RESPONSE-SCHEMA", "CT-PROBLEM-JSON", "CT-NO-5XX"],
        metrics={"cases": 412, "cases_per_s": 128.7, "operations": 14},
        error="schemathesis stopped: the target closed the connection 3 times in a row",
        duration_s=31.05,
        findings=[
            Finding(check="CT-RESPONSE-SCHEMA", suite="conformance",
                    message="GET /tasks/{id} answered a body that does not match TaskResponse: "
                            "'status' is 10.0, not an integer",
                    evidence={"operation": "GET /tasks/{id}", "schema_path": "data/status/type",
                              "instance": 10.0},
                    repro=_curl("GET", "/tasks/tsk_0042")),
            Finding(check="CT-NO-5XX", suite="conformance",
                    message="POST /apps/run answered 500 for an input that fails the app's schema",
                    evidence={"status": 500, "body": "Internal Server Error"},
                    repro=_curl("POST", "/apps/run", {"app": "infsh/echo", "input": {"message": 12345}})),
        ])
    lifecycle = SuiteResult(
        name="lifecycle", status="failed",
        checks=["LC-KNOWN-STATUS", "LC-NO-REGRESSION", "LC-REALTIME-TERMINAL", "LC-NO-LOST-TASK",
                "LC-SETUP-WARMTH"],
        metrics={"seed": 3485578087, "tasks_created": 60, "observations": 612, "observers": 3,
                 "setup_warm_rate": 0.82, "latency_ms": {"get": {"p50": 3.1, "p99": 18.0}}},
        duration_s=28.7,
        findings=[
            Finding(check="LC-NO-REGRESSION", suite="lifecycle", task_id="tsk_0005",
                    message="observer c2 saw 7 (running) then 3 (dispatched)",
                    evidence={"observer": "c2", "before": {"status": 7, "channel": "get", "line": 41},
                              "after": {"status": 3, "channel": "get", "line": 44}},
                    repro="harness check-history reports/RUN/observations.jsonl"),
            Finding(check="LC-NO-LOST-TASK", suite="lifecycle", task_id="tsk_0057",
                    message="accepted run never reached a terminal status within 60 s",
                    evidence={"last_status": 7, "deadline_s": 60}),
            Finding(check="LC-SETUP-WARMTH", suite="lifecycle", severity="info",
                    message="18% of runs with a warm worker's setup still went through setup",
                    evidence={"warm_runs": 50, "setup_seen": 9}),
        ])
    ratelimit = SuiteResult(
        name="ratelimit", status="failed",
        checks=["RL-NO-EARLY-429", "RL-REMAINING-COUNTDOWN", "RL-RETRY-AFTER", "RL-KEY-ISOLATION"],
        metrics={"groups": 3, "requests": 1320, "rejected_429": 20},
        duration_s=9.9,
        findings=[
            Finding(check="RL-REMAINING-COUNTDOWN", suite="ratelimit", severity="warning",
                    message="group get: X-RateLimit-Remaining went 41 -> 41 on an admitted request",
                    evidence={"group": "get", "sequence": [43, 42, 41, 41, 40]},
                    repro=_curl("GET", "/tasks/tsk_0001")),
            Finding(check="RL-RETRY-AFTER", suite="ratelimit",
                    message="a 429 from POST /apps/run had no Retry-After header",
                    evidence={"status": 429, "headers": {"x-ratelimit-remaining": "0"}},
                    repro=_curl("POST", "/apps/run", {"app": "infsh/echo", "input": {"message": "x"}})),
        ])
    load = SuiteResult(
        name="load", status="failed",
        checks=["LD-ERROR-RATE", "LD-P95-LATENCY", "LD-THROUGHPUT"],
        metrics={"users": 32, "rps": 842.5, "p95_ms": 212.0, "errors": 17, "tasks_created": 300,
                 "scenarios": {"mixed": {"hdr": {"get_task": "HISTFAAAAB94nJNpmSzMwMDAyQABzFCaEUwy",
                                                 },
                                         "endpoints": ENDPOINTS},
                               "agent_chat": {"endpoints": AGENT_ENDPOINTS}}},
        duration_s=60.3,
        findings=[
            Finding(check="LD-P95-LATENCY", suite="load",
                    message="GET /tasks/{id} p95 212 ms exceeds the 150 ms threshold",
                    evidence={"endpoint": "GET /tasks/{id}", "p95_ms": 212.0, "threshold_ms": 150}),
        ])
    for i in range(extra_findings):
        load.findings.append(Finding(check="LD-ERROR-RATE", suite="load", task_id=f"tsk_x{i:03d}",
                                     message=f"extra finding number {i}"))
    # The history below starts at 2025-01-01T00:00:00Z: smoke's and ratelimit's times are shaded.
    smoke.started, smoke.ended = 1_735_689_600.0, 1_735_689_602.0
    ratelimit.started, ratelimit.ended = 1_735_689_602.0, 1_735_689_605.0
    return RunResult(run_id="20250101T000000Z-abc123", target=TARGET,
                     started_at="2025-01-01T00:00:00Z", finished_at="2025-01-01T00:02:22Z",
                     settings={"base_url": TARGET, "max_tasks": 500, "rate_window": 2.0,
                               "faults": ["status-regression"], "allow_hosts": [],
                               "leaky_debug_header": f"Authorization: Bearer {OTHER_KEY}"},
                     suites=[smoke, conformance, lifecycle, ratelimit, load])


def write_history(path: Path, tasks: int = 60, seed: int = 7) -> int:
    """A synthetic history: runs, polls by three observers, SSE streams, a burst of 429s with
    X-RateLimit-Remaining, a timeout, a float status, and one status regression (tsk_0005)."""
    rng = random.Random(seed)
    base_ns, base_wall = 5_000_000_000_000, 1_735_689_600.0
    window_s, limits = 2.0, {"run": 100, "get": 1000}
    used: dict[tuple[str, str, int], int] = {}
    records: list[Observation] = []

    def obs(channel: Channel, at_s: float, latency_s: float | None, observer: str, key: str = "primary",
            **fields: Any) -> Observation:
        send = base_ns + int(at_s * 1e9)
        recv = None if latency_s is None else send + int(latency_s * 1e9)
        group = "run" if channel == "run" else "get"
        extra = dict(fields.pop("extra", {}))
        if (latency_s is not None and fields.get("http") != 429 and channel not in ("sse", "ndjson")
                and "rl_remaining" not in extra):
            window = int(at_s // window_s)
            count = used[(group, key, window)] = used.get((group, key, window), 0) + 1
            extra.update(rl_remaining=max(limits[group] - count, 0), rl_group=group)
        record = Observation(task=fields.pop("task", None), observer=observer, channel=channel,
                             send_ns=send, recv_ns=recv, wall=base_wall + at_s, key=key,
                             extra=extra, **fields)
        records.append(record)
        return record

    for i in range(tasks):
        task = f"tsk_{i:04d}"
        start = i * 0.08
        observer = f"c{i % 3 + 1}"
        obs("run", start, rng.uniform(0.01, 0.04), observer, task=task, http=200, status=1)
        ending = 11 if i % 13 == 4 else 12 if i % 17 == 6 else 10
        path_statuses = [1, 2, 3, 7, 9, ending] if ending == 10 else [2, 3, 7, ending]
        if i == 5:
            path_statuses = [2, 3, 7, 3, 7, 10]  # the regression the lifecycle finding names
        t = start + 0.05
        for status in path_statuses:
            t += rng.uniform(0.04, 0.12)
            obs("get", t, rng.uniform(0.002, 0.02) * (3 if i > 40 else 1), observer, task=task,
                http=200, status=status, output=status == 10 or None)
        if i % 4 == 0:
            t_stream = start + 0.02
            for seq, status in enumerate([1, 2, 3, 7, ending]):
                obs("sse", t_stream, 0.03 + seq * 0.1, "c9", task=task, http=200, status=status,
                    conn=f"c9/sse{i}", seq=seq, kind="update")
    # a second key bursts through its run budget: Remaining counts down to 0, then 20 429s
    for j in range(6):
        obs("run", 1.9 + j * 0.01, 0.004, "c4", key="secondary", task=f"tsk_b{j}", http=200,
            status=13, extra={"rl_remaining": 5 - j, "rl_group": "run"})
    for j in range(20):
        obs("run", 2.0 + j * 0.01, 0.004, "c4", key="secondary", http=429,
            extra={"rl_remaining": 0, "rl_group": "run"})
    obs("run", 4.1, 0.004, "c4", key="secondary", task="tsk_b9", http=200, status=13,
        extra={"rl_remaining": 99, "rl_group": "run"})
    obs("get", 3.0, None, "c1", task="tsk_0003", outcome="timeout", extra={"error": "timeout"})
    obs("get", 3.1, 0.01, "c2", task="tsk_0007", http=200, status=10.0)
    records.sort(key=lambda r: r.recv_ns if r.recv_ns is not None else r.send_ns)
    with HistoryWriter(path) as writer:
        for record in records:
            writer.append(record)
    return len(records)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder as `harness check` leaves it, re-rendered from its files alone (once)."""
    folder = tmp_path_factory.mktemp("rendered") / "20250101T000000Z-abc123"
    write_history(folder / "observations.jsonl")
    write_results(make_result(), folder, [KEY, OTHER_KEY])
    written = render_run(folder)
    assert {p.name for p in written} == {"summary.md", "junit.xml", "index.html", "failures.har"}
    return folder


@pytest.fixture
def run_dir(rendered: Path, tmp_path: Path) -> Path:
    """A private copy of the rendered run folder (tests may add or change files in it)."""
    return Path(shutil.copytree(rendered, tmp_path / "reports" / rendered.name))


def test_results_json_matches_the_schema(run_dir: Path) -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    data = json.loads((run_dir / "results.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(data)
    assert data["schema_version"] == 1
    assert set(data["suites"]) == {"smoke", "conformance", "lifecycle", "ratelimit", "load"}
    assert len(data["findings"]) == 10


@pytest.mark.parametrize("mutate", [
    lambda d: d.pop("findings"),
    lambda d: d.update(schema_version=2),
    lambda d: d["findings"][0].update(severity="fatal"),
    lambda d: d["findings"][0].pop("check"),
    lambda d: d["suites"]["smoke"].update(status="green"),
    lambda d: d["suites"]["smoke"].update(duration_s=-1),
    lambda d: d.update(started_at="yesterday"),
    lambda d: d.update(api_key="x"),
])
def test_the_schema_rejects_broken_results(mutate: Any) -> None:
    data = make_result().to_json_dict()
    mutate(data)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, json.loads(SCHEMA_PATH.read_text()),
                            cls=jsonschema.Draft202012Validator)


def test_results_round_trip(run_dir: Path) -> None:
    data = json.loads((run_dir / "results.json").read_text())
    again = read_results(run_dir / "results.json")
    assert again.to_json_dict() == data
    assert [s.name for s in again.suites] == ["smoke", "conformance", "lifecycle", "ratelimit", "load"]
    (run_dir / "results.json").write_text(json.dumps({**data, "schema_version": 9}))
    with pytest.raises(ResultsError, match="schema_version"):
        read_results(run_dir / "results.json")


def test_junit_is_valid_and_has_a_case_per_check(run_dir: Path) -> None:
    xmlschema = pytest.importorskip("xmlschema")
    xmlschema.XMLSchema(str(JUNIT_XSD)).validate(str(run_dir / "junit.xml"))
    root = ET.parse(run_dir / "junit.xml").getroot()
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert list(suites) == ["smoke", "conformance", "lifecycle", "ratelimit", "load"]
    result = make_result()
    for suite in result.suites:
        element = suites[suite.name]
        cases = {c.get("name"): c for c in element.findall("testcase")}
        assert set(suite.checks) <= set(cases)
        for finding in suite.findings:
            failures = cases[finding.check].findall("failure")
            assert any(finding.message[:40] in (f.get("message") or "") for f in failures)
        failed = {f.check for f in suite.findings}
        assert element.get("failures") == str(len(failed))
    # the suite in error gets an <error>; the smoke finding's NUL and ESC did not break the XML
    assert suites["conformance"].get("errors") == "1"
    error = suites["conformance"].find("testcase/error")
    assert error is not None and "schemathesis stopped" in (error.get("message") or "")
    poll = next(c for c in suites["smoke"].findall("testcase") if c.get("name") == "ST-POLL-ORDER")
    text = poll.find("failure").text or ""  # type: ignore[union-attr]
    assert "statuses_seen" in text and "curl" in text and "tsk_0005" in text
    assert root.get("tests") == str(sum(int(s.get("tests") or 0) for s in suites.values()))


def test_summary_is_one_screen_with_the_findings(run_dir: Path) -> None:
    summary = (run_dir / "summary.md").read_text()
    assert TARGET in summary and "failed" in summary and "error" in summary
    for finding in make_result().findings:
        assert finding.check in summary
    assert "tsk_0005" in summary
    assert f"{run_dir.name}/index.html" in summary
    assert "<script>" not in summary and "\\|" in summary  # HTML escaped, pipes kept in cells
    assert "schemathesis stopped" in summary  # the suite error
    assert "369 billable runs made" in summary  # tasks_created of every suite
    assert len(summary.splitlines()) <= 50
    for name in ("smoke", "conformance", "lifecycle", "ratelimit", "load"):
        assert re.search(rf"^\| {name} \|", summary, re.M)
    assert "seed=3485578087" in summary  # pasteable into --seed
    assert "### Load `mixed` per endpoint" in summary
    assert "| `get_task` | 4,289 | 141 | 0 | 0.668 | 2.35 | 3.22 | 5.14 | 34.3 | — | — |" in summary
    assert "| `stream_sse` | 686 | 22.5 | 2 | 1.2 | 2 | 2.5 | 4 | 9 | 7.5 | 410 |" in summary
    # A table shows the column groups its rows have: the agent turn times, not the task streams'.
    assert "### Load `agent_chat` per endpoint" in summary
    assert "| p99 ms | max ms | first delta p95 ms | delta gap p95 ms | turn p95 ms |" in summary
    assert "| `agent_run` | 82 | 20.5 | 0 | 0.783 | 3.69 | 6.11 | 6.68 | 8.84 | — | — | — |" in summary
    assert "| `chat_stream` | 82 | 20.5 | 0 | 1.1 | 2.2 | 2.9 | 4.1 | 5 | 65.3 | 7.33 | 127 |" in summary


HAR_SCHEMA = {  # the required parts of HAR 1.2 that viewers rely on
    "type": "object", "required": ["log"],
    "properties": {"log": {"type": "object", "required": ["version", "creator", "entries"], "properties": {
        "entries": {"type": "array", "items": {
            "type": "object", "required": ["startedDateTime", "time", "request", "response", "cache",
                                           "timings"],
            "properties": {
                "request": {"type": "object", "required": ["method", "url", "httpVersion", "cookies",
                                                           "headers", "queryString", "headersSize",
                                                           "bodySize"]},
                "response": {"type": "object", "required": ["status", "statusText", "httpVersion",
                                                            "cookies", "headers", "content",
                                                            "redirectURL", "headersSize", "bodySize"]},
                "timings": {"type": "object", "required": ["send", "wait", "receive"]}}}}}}}}


def test_failures_har_holds_the_exchanges_behind_the_findings(run_dir: Path) -> None:
    har = json.loads((run_dir / "failures.har").read_text())
    jsonschema.validate(har, HAR_SCHEMA)
    entries = har["log"]["entries"]
    comments = {e["comment"].split(":", 1)[0] for e in entries}
    assert {"ST-POLL-ORDER", "ST-AUTH-REQUIRED"} <= comments, comments
    workers = next(e for e in entries if e["comment"].startswith("ST-AUTH-REQUIRED"))
    assert workers["request"]["url"] == f"{TARGET}/workers" and workers["response"]["status"] == 200
    # The task findings name: its observations from the history, as requests on the target.
    history = [e for e in entries if "LC-NO-REGRESSION" in e["comment"]]
    assert history and all(e["request"]["url"].startswith(f"{TARGET}/tasks") or
                           e["request"]["url"] == f"{TARGET}/apps/run" for e in history)
    assert any(e["request"]["url"] == f"{TARGET}/tasks/tsk_0005" for e in history)
    assert all(e["request"]["url"].startswith(("http://", "https://")) for e in entries)
    assert KEY not in json.dumps(har) and OTHER_KEY not in json.dumps(har)


def test_the_endpoint_chart_draws_the_tables(run_dir: Path) -> None:
    page = (run_dir / "index.html").read_text()
    start = page.index('id="chart-endpoints"')
    svg = page[start:page.index("</svg>", start)]
    assert "mixed · get_task" in svg and "mixed · stream_sse" in svg and "first event / delta p95" in svg
    assert "agent_chat · chat_stream" in svg and "terminal / turn p95" in svg


def test_time_charts_shade_each_suite(run_dir: Path) -> None:
    page = (run_dir / "index.html").read_text()
    for chart in ("chart-latency", "chart-throughput", "chart-ratelimit"):
        start = page.index(f'id="{chart}"')
        svg = page[start:page.index("</svg>", start)]
        assert ">smoke<" in svg and ">ratelimit<" in svg, chart
        assert ">lifecycle<" not in svg  # no times recorded: no band


def test_the_page_has_the_endpoint_table_and_no_histogram_blobs(run_dir: Path) -> None:
    page = (run_dir / "index.html").read_text()
    assert 'id="endpoints"' in page and "<code>stream_sse</code>" in page
    assert "<code>chat_stream</code>" in page and ">first delta p95 ms<" in page and ">turn p95 ms<" in page
    assert "HISTFAAAAB94" not in page  # the encoded histograms stay in results.json
    assert "HISTFAAAAB94" in (run_dir / "results.json").read_text()


def test_summary_caps_the_findings(tmp_path: Path) -> None:
    paths = render_result(make_result(extra_findings=25), tmp_path / "run")
    summary = (tmp_path / "run" / "summary.md").read_text()
    assert {p.name for p in paths} == {"results.json", "summary.md", "junit.xml", "index.html",
                                       "failures.har"}
    rows = [line for line in summary.splitlines() if re.match(r"^\| `[A-Z]{2}-", line)]
    assert len(rows) == MAX_FINDINGS
    assert f"and {10 + 25 - MAX_FINDINGS} more" in summary


def test_no_key_in_any_file_of_the_run_folder(run_dir: Path, tmp_path: Path) -> None:
    # render_result with the keys, as the CLI does after a run, into a second folder
    other = tmp_path / "direct"
    write_history(other / "observations.jsonl")
    render_result(make_result(), other, [KEY, OTHER_KEY])
    for folder in (run_dir, other):
        files = [p for p in folder.rglob("*") if p.is_file()]
        assert {"results.json", "summary.md", "junit.xml", "index.html", "observations.jsonl"} <= {
            p.name for p in files}
        for path in files:
            data = path.read_bytes()
            for key in (KEY, OTHER_KEY):
                assert key.encode() not in data, f"{key} leaked into {path}"
        assert "Bearer ***" in (folder / "results.json").read_text()


def test_a_429_without_task_and_a_timeout_read_back(tmp_path: Path) -> None:
    """The rate-limit chart needs the 429s of runs that created no task, and throughput needs the
    requests that got no answer: both are written without `task` / `recv_ns` (None is omitted)."""
    path = tmp_path / "observations.jsonl"
    with HistoryWriter(path) as writer:
        writer.append(Observation(None, "c1", "run", 1, 2, 1.0, http=429,
                                  extra={"rl_remaining": 0, "rl_group": "run"}))
        writer.append(Observation("tsk_1", "c1", "get", 3, None, 1.1, outcome="timeout"))
    stats = collect(path)
    assert stats.error is None, (f"harness/history.py cannot read back what it wrote: {stats.error} "
                                 "(Observation.from_dict needs task and recv_ns to default to None)")
    assert stats.rejected == 1 and stats.requests == 2


def test_stats_see_what_the_history_holds(tmp_path: Path) -> None:
    path = tmp_path / "observations.jsonl"
    count = write_history(path)
    stats = collect(path, load_lifecycle().terminal)
    assert stats.error is None, f"the history does not read back: {stats.error}"
    assert stats.observations == count and stats.skipped == 0
    assert stats.transitions[(7, 3)] == 1  # the regression, seen by its observer
    assert stats.rejected == 20
    assert set(stats.rate) == {("run", "primary"), ("get", "primary"), ("run", "secondary")}
    assert list(stats.r429["run"].remaining) == [0] * 20
    seconds, _statuses, missing = stats.time_to_terminal()
    assert len(seconds) == 60 + 7 and missing == 0 and all(s > 0 for s in seconds)
    assert stats.odd_statuses == 1
    assert "sse" in stats.channels


def test_a_run_without_history_says_no_data(tmp_path: Path) -> None:
    render_result(make_result(), tmp_path)
    page = (tmp_path / "index.html").read_text()
    for chart_id in CHART_IDS:
        assert f'id="{chart_id}" data-has-data="false"' in page
    # Only the endpoint chart draws: it comes from results.json, not from the history.
    assert page.count("<svg") == 1 and 'id="chart-endpoints" data-has-data="true"' in page
    assert page.count('class="nodata"') >= 5


def test_a_torn_or_broken_history_still_renders(tmp_path: Path) -> None:
    write_history(tmp_path / "observations.jsonl", tasks=10)
    with (tmp_path / "observations.jsonl").open("a") as handle:
        handle.write('{"not": "an observation"}\n{"task":"tsk_x","obs')
    render_result(make_result(), tmp_path)
    page = (tmp_path / "index.html").read_text()
    assert "Reading stopped early" in page and 'id="chart-latency" data-has-data="true"' in page


def test_the_run_s_lifecycle_judges_the_transitions() -> None:
    result = make_result()
    assert lifecycle_of(result) == load_lifecycle()
    result.settings["lifecycle"] = "docs"
    docs = lifecycle_of(result)
    assert docs is not None and docs.name == "docs"
    result.settings["lifecycle"] = "no-such-lifecycle"
    assert lifecycle_of(result) == load_lifecycle()


def test_render_run_needs_results_json(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"results\.json"):
        render_run(tmp_path)


def test_rendering_a_few_thousand_observations_stays_small(tmp_path: Path) -> None:
    # Speed is a benchmark matter (this machine is shared); here: every chart, bounded page size.
    count = write_history(tmp_path / "observations.jsonl", tasks=600)
    assert count > 4000
    write_results(make_result(), tmp_path, [])
    render_run(tmp_path)
    page = (tmp_path / "index.html").read_text()
    assert page.count("<svg") == len(CHART_IDS) + 1  # and the endpoint chart
    assert len(page) < 3_000_000


# --- the page in a real browser -------------------------------------------------------------

@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        reason = ("Debian's chromium and chromium-driver are not installed and could not be "
                  "installed (scripts/ensure-chromium.sh, run by `make test`, installs them)")
        if os.environ.get("HARNESS_REQUIRE_BROWSER") == "1":
            pytest.fail(reason + "; HARNESS_REQUIRE_BROWSER=1 makes that a failure")
        pytest.skip(reason)
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must not try to download anything
    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in CHROMIUM_ARGS:
        options.add_argument(argument)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    options.add_argument("--window-size=1400,1000")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=str(CHROMEDRIVER), log_output=os.devnull)
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()


def test_index_html_renders_in_headless_chromium(run_dir: Path, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get((run_dir / "index.html").as_uri())
    deadline = time.monotonic() + 10
    while browser.execute_script("return document.readyState") != "complete":
        assert time.monotonic() < deadline, "the page never finished loading"
        time.sleep(0.05)
    assert "Harness error" in browser.title  # a suite ended in error
    for chart_id in CHART_IDS:
        svgs = browser.find_elements(By.CSS_SELECTOR, f"#{chart_id} svg")
        assert len(svgs) == 1, f"{chart_id} has no chart"
        size = svgs[0].size
        assert size["width"] > 300 and size["height"] > 100, f"{chart_id} is drawn too small: {size}"
    rows = browser.find_elements(By.CSS_SELECTOR, "#findings-table tbody tr")
    assert len(rows) == 10
    assert len(browser.find_elements(By.CSS_SELECTOR, "#suites-table tbody tr")) == 5
    # the inline script works: filtering by a check prefix leaves only that suite's findings
    browser.find_element(By.ID, "finding-filter").send_keys("RL-")
    assert browser.find_element(By.ID, "finding-shown").text == "2"
    assert sum(1 for row in rows if row.is_displayed()) == 2
    browser.find_element(By.ID, "finding-filter").send_keys(Keys.BACKSPACE * 3)
    assert browser.find_element(By.ID, "finding-shown").text == "10"
    browser.find_element(By.ID, "finding-expand").click()
    evidence = browser.find_elements(By.CSS_SELECTOR, "#findings-table details")
    assert evidence and all(d.get_attribute("open") for d in evidence)
    browser.find_element(By.ID, "finding-expand").click()  # collapsed again for the screenshot
    # the HTML escaped the hostile evidence: no script ran, no alert is open
    assert browser.execute_script("return document.querySelectorAll('td script').length") == 0
    severe = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not severe, f"console errors: {severe}"
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1400, min(int(height) + 40, 16000))
    browser.execute_script("window.scrollTo(0, 0)")
    shot = run_dir / "screenshot.png"
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    for text in folder_texts(run_dir).values():
        assert KEY not in text


def test_the_schema_doc_describes_every_field_and_its_example_validates() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "results-schema.md").read_text()
    schema = json.loads(SCHEMA_PATH.read_text())
    names = set(schema["properties"])
    for definition in ("suite", "finding"):
        names |= set(schema["$defs"][definition]["properties"])
    for name in sorted(names):
        assert f"| `{name}` |" in doc, f"docs/results-schema.md does not describe {name}"
    example = re.search(r"```json\n(.*?)```", doc, re.S)
    assert example is not None
    jsonschema.Draft202012Validator(schema).validate(json.loads(example.group(1)))
