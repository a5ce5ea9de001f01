"""The baseline of the get_task benchmark: a bare Starlette JSON route on the same uvicorn setup.

`python -m benchmarks.baseline_app --bodies FILE` serves `GET /tasks/{id}`, answering with
`{"success": true, "data": <the dict stored under id in FILE>, "messages": []}` through
Starlette's JSONResponse (serialised on every request, as the reference server does), with no
authentication, rate limiting or engine behind it. It binds a free loopback port with the
reference server's own `bind` (same listen backlog), prints `listening on URL`, and runs
uvicorn with the settings of harness/server/serve.py (one process).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from benchmarks.common import LOOPBACK, UVICORN_SETTINGS
from harness.server.serve import bind, url_of


def create_app(bodies: dict[str, Any]) -> Starlette:
    async def get_task(request: Request) -> Response:
        data = bodies.get(request.path_params["id"])
        if data is None:
            return JSONResponse({"success": False, "error": "not found"}, status_code=404)
        return JSONResponse({"success": True, "data": data, "messages": []})

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route("/tasks/{id}", get_task, methods=["GET"]),
                             Route("/healthz", health, methods=["GET"])])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.baseline_app")
    parser.add_argument("--bodies", type=Path, required=True,
                        help="JSON object: task id -> the task dict to answer with")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    bodies: dict[str, Any] = json.loads(args.bodies.read_text())
    app = create_app(bodies)
    sock = bind(LOOPBACK, args.port)
    print(f"listening on {url_of(sock)}", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, **UVICORN_SETTINGS))
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
