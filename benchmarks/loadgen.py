"""Closed-loop HTTP/1.1 keep-alive load: wrk when it is on PATH, else Python worker processes.

Both send a fixed rotation of GET requests (path + Authorization header) over C keep-alive
connections for D seconds and report completed requests, non-2xx answers and socket errors.
The Python fallback (`python -m benchmarks.loadgen JOB_FILE`, JSON job in, JSON result on stdout)
uses raw non-blocking sockets and a selector, one process per client CPU; it costs more CPU
per request than wrk, so on a fast server it may be the bottleneck (the result says which
generator ran).
"""

from __future__ import annotations

import json
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from benchmarks.common import PROJECT_ROOT, BenchmarkError, pin, taskset_prefix
from harness.net.reference import stop_process


@dataclass(frozen=True)
class Target:
    """One request of the rotation: a path and the bearer key to send."""

    path: str
    key: str


@dataclass
class LoadResult:
    generator: str
    requests: int
    seconds: float
    non_2xx: int
    socket_errors: int
    timeouts: int
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    latency_max_ms: float | None = None

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rps": round(self.rps, 1)}


def generator_name(choice: str) -> str:
    """Resolve `auto` to `wrk` when wrk is on PATH, else `python`."""
    if choice == "auto":
        return "wrk" if shutil.which("wrk") else "python"
    if choice == "wrk" and not shutil.which("wrk"):
        raise BenchmarkError("--loadgen wrk: wrk is not on PATH (apt-get install wrk)")
    return choice


def run_load(generator: str, url: str, targets: list[Target], connections: int, seconds: int,
             client_cpus: frozenset[int] | None) -> LoadResult:
    if generator == "wrk":
        return _run_wrk(url, targets, connections, seconds, client_cpus)
    return _run_python(url, targets, connections, seconds, client_cpus)


# -- wrk ------------------------------------------------------------------------------------

_WRK_SCRIPT = """
local reqs = {}
local i = 0
local pairs_ = { %(pairs)s }
init = function(args)
  for _, p in ipairs(pairs_) do
    reqs[#reqs + 1] = wrk.format("GET", p[1], { ["Authorization"] = "Bearer " .. p[2] })
  end
end
request = function()
  i = i %% #reqs + 1
  return reqs[i]
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%%d,"duration_us":%%d,"connect":%%d,"read":%%d,"write":%%d,' ..
    '"status":%%d,"timeout":%%d,"p50_us":%%d,"p99_us":%%d,"max_us":%%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def _lua_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _run_wrk(url: str, targets: list[Target], connections: int, seconds: int,
             client_cpus: frozenset[int] | None) -> LoadResult:
    wrk = shutil.which("wrk")
    assert wrk is not None
    pairs = ", ".join(f"{{{_lua_string(t.path)}, {_lua_string(t.key)}}}" for t in targets)
    # Requests are built once in init() and rotated (wrk's advice for fast servers); the
    # keys live in a private temporary file, never on a command line.
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        script = Path(tmp) / "rotate.lua"
        script.write_text(_WRK_SCRIPT % {"pairs": pairs})
        script.chmod(0o600)
        cmd = [*taskset_prefix(client_cpus), wrk, "-t1", f"-c{connections}", f"-d{seconds}s",
               "--timeout", "5s", "-s", str(script), url]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30)
        except subprocess.TimeoutExpired as exc:
            raise BenchmarkError(f"wrk did not finish within {seconds + 30} s") from exc
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if done.returncode != 0 or line is None:
        raise BenchmarkError(f"wrk failed ({done.returncode}): {done.stderr.strip()[-300:]}")
    data = json.loads(line.split(" ", 1)[1])
    return LoadResult(
        generator="wrk", requests=int(data["requests"]), seconds=data["duration_us"] / 1e6,
        non_2xx=int(data["status"]), socket_errors=int(data["connect"] + data["read"] + data["write"]),
        timeouts=int(data["timeout"]), latency_p50_ms=data["p50_us"] / 1000.0,
        latency_p99_ms=data["p99_us"] / 1000.0, latency_max_ms=data["max_us"] / 1000.0)


# -- Python fallback ------------------------------------------------------------------------

def _run_python(url: str, targets: list[Target], connections: int, seconds: int,
                client_cpus: frozenset[int] | None) -> LoadResult:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    procs = max(1, len(client_cpus) if client_cpus else 1)
    procs = min(procs, connections)
    shares = [connections // procs + (1 if i < connections % procs else 0) for i in range(procs)]
    job_base = {"host": host, "port": port, "seconds": seconds,
                "targets": [[t.path, t.key] for t in targets]}
    children: list[subprocess.Popen[str]] = []
    outputs: list[dict[str, Any]] = []
    # The job (keys included) goes through a private temporary file, not the command line.
    with tempfile.TemporaryDirectory(prefix="bench-loadgen-") as tmp:
        try:
            for index, share in enumerate(shares):
                job_file = Path(tmp) / f"job{index}.json"
                job_file.write_text(json.dumps({**job_base, "connections": share}))
                job_file.chmod(0o600)
                child = subprocess.Popen(
                    [*taskset_prefix(client_cpus), sys.executable, "-m", "benchmarks.loadgen",
                     str(job_file)],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=PROJECT_ROOT)
                if not taskset_prefix(client_cpus):
                    pin(child.pid, client_cpus)
                children.append(child)
            for child in children:
                out, err = child.communicate(timeout=seconds + 30)
                if child.returncode != 0:
                    raise BenchmarkError(f"load generator failed: {err.strip()[-300:]}")
                outputs.append(json.loads(out))
        except subprocess.TimeoutExpired as exc:
            raise BenchmarkError("Python load generator did not finish in time") from exc
        finally:
            for child in children:
                stop_process(child)
    return LoadResult(
        generator=f"python x{procs}",
        requests=sum(o["requests"] for o in outputs),
        seconds=max(o["seconds"] for o in outputs),
        non_2xx=sum(o["non_2xx"] for o in outputs),
        socket_errors=sum(o["socket_errors"] for o in outputs),
        timeouts=0)


class _Conn:
    __slots__ = ("buf", "next", "sock")

    def __init__(self, sock: socket.socket, first: int) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.next = first


def _worker(job: dict[str, Any]) -> dict[str, Any]:
    host, port = str(job["host"]), int(job["port"])
    host_header = f"{host}:{port}"
    requests = [(f"GET {path} HTTP/1.1\r\nHost: {host_header}\r\nAuthorization: Bearer {key}\r\n"
                 "\r\n").encode("latin-1") for path, key in job["targets"]]
    sel = selectors.DefaultSelector()
    conns: list[_Conn] = []
    for i in range(int(job["connections"])):
        sock = socket.create_connection((host, port), timeout=5)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        conn = _Conn(sock, i % len(requests))
        conns.append(conn)
        sel.register(sock, selectors.EVENT_READ, conn)
    done = non_2xx = errors = 0
    start = time.perf_counter()
    deadline = start + float(job["seconds"])
    for conn in conns:
        conn.sock.send(requests[conn.next])
    while conns:
        now = time.perf_counter()
        if now >= deadline:
            break
        for key, _ in sel.select(timeout=deadline - now):
            conn = key.data
            try:
                chunk = conn.sock.recv(262144)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                chunk = b""
            if not chunk:
                errors += 1
                sel.unregister(conn.sock)
                conn.sock.close()
                conns.remove(conn)
                continue
            conn.buf += chunk
            while True:
                end = conn.buf.find(b"\r\n\r\n")
                if end < 0:
                    break
                head = bytes(conn.buf[:end]).lower()
                at = head.find(b"\r\ncontent-length:")
                if at < 0:
                    raise RuntimeError("response without Content-Length")
                stop_at = head.find(b"\r\n", at + 2)
                length = int(head[at + 17: stop_at if stop_at >= 0 else len(head)])
                total = end + 4 + length
                if len(conn.buf) < total:
                    break
                status = int(head[9:12])
                del conn.buf[:total]
                done += 1
                if not 200 <= status < 300:
                    non_2xx += 1
                conn.next = (conn.next + 1) % len(requests)
                conn.sock.send(requests[conn.next])
    elapsed = time.perf_counter() - start
    for conn in conns:
        sel.unregister(conn.sock)
        conn.sock.close()
    return {"requests": done, "seconds": elapsed, "non_2xx": non_2xx, "socket_errors": errors}


def main() -> int:
    job = json.loads(Path(sys.argv[1]).read_text())
    print(json.dumps(_worker(job)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
