"""A Locust worker judges a master's plan by its own settings: signed with its own
HARNESS_MASTER_TOKEN or refused, before any request is made with its key."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from harness.suites.load.plan_auth import TOKEN_ENV, plan_refusal, sign
from tests.hostile.servers import Request, answer, raw_server, send_all

MASTER_KEY = "inf_MasterSideKeyABCDEFGH"
WORKER_KEY = "inf_WorkerSideKeyIJKLMNOP"


def test_a_plan_is_run_only_with_the_workers_token() -> None:
    plan = '{"base_url":"http://127.0.0.1:1"}'
    assert plan_refusal(plan, None, "") is None  # a worker without a token asks for no proof
    assert plan_refusal(plan, sign(plan, "s3cret"), "s3cret") is None
    assert "not signed" in (plan_refusal(plan, sign(plan, "other"), "s3cret") or "")
    assert "not signed" in (plan_refusal(plan + " ", sign(plan, "s3cret"), "s3cret") or "")
    assert "no plan signed" in (plan_refusal(plan, "", "s3cret") or "")
    assert "no plan signed" in (plan_refusal(None, None, "s3cret") or "")
    assert "s3cret" not in sign(plan, "s3cret")


def _free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return int(probe.getsockname()[1])


@pytest.mark.timeout(90)
def test_a_worker_refuses_a_plan_signed_with_another_token(tmp_path: Path) -> None:
    seen: list[str] = []
    lock = threading.Lock()

    def target(conn: socket.socket, request: Request, _stop: threading.Event) -> None:
        with lock:
            seen.append(request.headers.get("authorization", ""))
        send_all(conn, answer(200, b'{"success":true,"data":[],"messages":[]}', {"Connection": "close"}))

    port = _free_port()
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    with raw_server(target) as url:
        started = time.monotonic()
        master = subprocess.Popen(
            [sys.executable, "-m", "harness", "load", "--base-url", url, "--api-key", MASTER_KEY,
             "--master", "--expect-workers", "1", "--master-bind", "127.0.0.1", "--master-port",
             str(port), "--scenario", "fire_and_forget_poll", "--users", "1", "--duration", "1s",
             "--deadline", "2", "--out", str(tmp_path / "out")],
            env={**base, TOKEN_ENV: "master-side-secret"}, cwd=tmp_path, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        worker = subprocess.Popen(
            [sys.executable, "-m", "harness", "load", "--worker", "--master-host", "127.0.0.1",
             "--master-port", str(port)],
            env={**base, TOKEN_ENV: "worker-side-secret", "HARNESS_API_KEYS": WORKER_KEY},
            cwd=tmp_path, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            master_out, master_err = master.communicate(timeout=75)
            worker_out, worker_err = worker.communicate(timeout=15)
        finally:
            for child in (master, worker):
                if child.poll() is None:
                    child.kill()
                    child.wait()
        took = time.monotonic() - started
    everything = master_out + master_err + worker_out + worker_err
    assert "refuses the master's plan: the master's plan is not signed with this worker's " \
           f"{TOKEN_ENV}" in worker_err, worker_err[-2000:]
    assert not any(WORKER_KEY in header for header in seen), "the worker's key reached the target"
    assert master.returncode == 4, master_err[-2000:]  # the suite judged nothing: never a pass
    assert "1 worker(s) refused the plan: the master's plan is not signed" in master_out + master_err
    assert took < 75, f"took {took:.1f} s"
    assert "Traceback (most recent" not in everything
    files = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    for text in [everything, *(p.read_text(errors="replace") for p in files)]:
        for secret in ("master-side-secret", "worker-side-secret", MASTER_KEY, WORKER_KEY):
            assert secret not in text
