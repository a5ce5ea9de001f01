"""A hostile fake target for the conformance suite: raw asyncio HTTP/1.1, every answer wrong.

Run as `python tests/hostile_target.py [PORT]`; it prints `listening on http://127.0.0.1:PORT`.

- POST /apps/run        a plausible task (so the suite goes on to read it)
- GET  /tasks/{id}      200 with Content-Type application/json and an HTML body
- GET  /tasks/{id}/status, GET /tasks   the connection is reset (RST) before any answer
- GET  /tasks/{id}/stream   NDJSON (and no Accept): endless heartbeats, never a terminal update;
                            SSE: a truncated event, then the connection closes mid-line
- POST /files           a file record whose upload_url is relative
- GET  /workers         declares a 1000-byte body, sends 10 bytes, then stalls
- anything else         404 text/plain
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import sys

TASK = {"id": "task_hostile", "short_id": "hostile", "status": 1, "status_text": "received",
        "app": "infsh/echo", "input": {"message": "x"}, "output": None, "error": None, "logs": [],
        "events": [], "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"}


def _response(status: int, body: bytes, content_type: str = "application/json",
              extra: str = "") -> bytes:
    head = (f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n{extra}\r\n")
    return head.encode() + body


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        writer.close()
        return
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = [*lines[0].split(" "), "", "", ""][:3]
    headers = {k.strip().lower(): v.strip()
               for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    length = int(headers.get("content-length", "0") or 0)
    if length:
        await reader.readexactly(length)
    path = target.split("?", 1)[0]
    parts = [p for p in path.split("/") if p]
    try:
        if method == "POST" and path == "/apps/run":
            body = json.dumps({"success": True, "data": TASK, "messages": []}).encode()
            writer.write(_response(200, body))
        elif method == "GET" and path == "/healthz":
            writer.write(_response(200, b'{"status":"ok"}'))
        elif method == "GET" and len(parts) == 3 and parts[0] == "tasks" and parts[2] == "stream":
            await _stream(writer, headers.get("accept", ""))
            return
        elif method == "GET" and (path == "/tasks" or (len(parts) == 3 and parts[2] == "status")):
            _reset(writer)
            return
        elif method == "GET" and len(parts) == 2 and parts[0] == "tasks":
            writer.write(_response(200, b"<html><body>Internal proxy page</body></html>"))
        elif method == "POST" and path == "/files":
            record = {"id": "file_1", "upload_url": "/upload/abc", "uri": "/files/file_1/x.png"}
            writer.write(_response(200, json.dumps({"success": True, "data": [record],
                                                    "messages": []}).encode()))
        elif method == "GET" and path == "/workers":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
                         b'{"success"')
            await writer.drain()
            await asyncio.sleep(3600)
        else:
            writer.write(_response(404, b"nope", "text/plain"))
        await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        if not writer.is_closing():
            writer.close()


async def _stream(writer: asyncio.StreamWriter, accept: str) -> None:
    if "text/event-stream" in accept and "x-ndjson" not in accept:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
                     b'id: 1\ndata: {"data":{"id":"task_hostile","sta')
        await writer.drain()
        writer.close()
        return
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nConnection: close\r\n\r\n")
    try:
        while True:
            writer.write(b'{"type":"heartbeat"}\n')
            await writer.drain()
            await asyncio.sleep(0.1)
    except ConnectionError:
        writer.close()


async def main(port: int) -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", port)
    host, bound = server.sockets[0].getsockname()[:2]
    print(f"listening on http://{host}:{bound}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
