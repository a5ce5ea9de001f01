"""Start and stop the reference server as a child process (the checking side meets it over HTTP)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx


class ReferenceServerError(RuntimeError):
    """The reference server did not come up."""


@dataclass
class ReferenceServer:
    """A running reference server: its URL, keys and process."""

    url: str
    keys: list[str]
    process: subprocess.Popen[str]
    output: list[str]


def fresh_keys(count: int = 2) -> list[str]:
    return ["inf_" + secrets.token_urlsafe(18) for _ in range(count)]


@contextmanager
def reference_server(keys: Sequence[str] | None = None, rate_window: float | None = None,
                     speed: float = 10.0, faults: Sequence[str] = (),
                     extra_args: Sequence[str] = (), host: str = "127.0.0.1",
                     startup_timeout: float = 20.0, python: str = sys.executable,
                     cwd: str | None = None) -> Iterator[ReferenceServer]:
    """Run `harness serve` on a free loopback port for the duration of the block.

    `python` is the interpreter whose `harness` runs (another environment's, to test a wheel).
    """
    keys = list(keys) if keys else fresh_keys()
    # `harness.server` rather than `harness serve`: the same options, without importing the suites.
    cmd = [python, "-m", "harness.server", "--host", host, "--port", "0",
           "--speed", str(speed)]
    if rate_window is not None:
        cmd += ["--rate-window", str(rate_window)]
    for fault in faults:
        cmd += ["--fault", fault]
    cmd += list(extra_args)
    # Keys travel in the environment, never on the command line (visible in `ps`).
    env = {**os.environ, "HARNESS_API_KEYS": ",".join(keys)}
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env=env, cwd=cwd)
    output: list[str] = []
    url = _wait_for_url(process, output, startup_timeout)
    server = ReferenceServer(url, keys, process, output)
    try:
        _wait_healthy(url, startup_timeout)
        yield server
    finally:
        stop_process(process)


def stop_process(process: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """Terminate a child we started, then kill it if it does not go."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def read_announced_url(process: subprocess.Popen[str], output: list[str], timeout: float) -> str | None:
    """Collect the process's output lines; return the URL of its `listening on URL` line, or None."""
    found: list[str] = []
    done = threading.Event()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line.rstrip("\n"))
            if line.startswith("listening on ") and not found:
                found.append(line.split("listening on ", 1)[1].strip())
                done.set()
        done.set()

    threading.Thread(target=pump, daemon=True).start()
    return found[0] if done.wait(timeout) and found else None


def _wait_for_url(process: subprocess.Popen[str], output: list[str], timeout: float) -> str:
    url = read_announced_url(process, output, timeout)
    if url is None:
        process.kill()
        raise ReferenceServerError("reference server did not start: " + " | ".join(output[-5:]))
    return url


def _wait_healthy(url: str, timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if httpx.get(f"{url}/healthz", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise ReferenceServerError(f"reference server at {url} did not answer /healthz")
