"""Run by tests/suites/test_load.py in its own process (gevent patches the whole process).

A raw loopback server records every request head; an ApiUser sends an API path (the pooled
client), the same through the user agent, a path that redirects (302), a POST both ways, and a
POST answered 303. Prints one JSON line: the answers and the request heads as received.
"""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402

from probe_environment import probe_environment  # noqa: E402

from harness.suites.load.routes import GET_TASK, RUN, Request, json_payload  # noqa: E402
from harness.suites.load.users import ApiUser  # noqa: E402

BODY = json.dumps({"success": True, "data": {"id": "t", "status": 2}, "messages": []}).encode()
heads: list[str] = []
stolen: list[str] = []  # connections made to the other origin (must stay empty)
OTHER = {"url": ""}


def answer(conn: socket.socket) -> None:
    buffer = b""
    while data := conn.recv(65536):
        buffer += data
        while b"\r\n\r\n" in buffer:
            head, buffer = buffer.split(b"\r\n\r\n", 1)
            heads.append(head.decode())
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            buffer = buffer[length:]
            status = (b"302 Found\r\nLocation: /api/tasks/moved" if b"/tasks/old " in head else
                      b"303 See Other\r\nLocation: moved" if b"/apps/redirect " in head else
                      b"307 Temporary Redirect\r\nLocation: " + OTHER["url"].encode()
                      if b"/tasks/away " in head else b"200 OK")
            conn.sendall(b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n"
                         b"Content-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)


def main() -> int:
    listener = socket.create_server(("127.0.0.1", 0))
    host = f"http://127.0.0.1:{listener.getsockname()[1]}/api"

    def accept() -> None:
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    other = socket.create_server(("127.0.0.2", 0))  # another host name, still loopback
    OTHER["url"] = f"http://127.0.0.2:{other.getsockname()[1]}/steal"

    def record_other() -> None:
        while True:
            conn, _ = other.accept()
            stolen.append(conn.recv(65536).decode(errors="replace"))
            conn.close()

    threading.Thread(target=record_other, daemon=True).start()
    os.environ["HARNESS_API_KEYS"] = "inf_probe_key"

    class Probe(ApiUser):
        def scenario(self) -> None:
            pass

    Probe.host = host
    env, _ = probe_environment(Probe, host)
    user = Probe(env)
    user.on_start()
    pooled = user.get_task("t")
    agent, _, _ = user.send("GET", host + "/tasks/t", user._headers[0], None)
    moved = user.call(Request(GET_TASK, "/tasks/old"))
    posted = user.call(Request(RUN, "/apps/run", json_payload({"app": "x"})))
    agent_post, _, _ = user.send("POST", host + "/apps/run", user._json_headers[0], b'{"app":"x"}')
    seen_other = user.call(Request(RUN, "/apps/redirect", json_payload({"app": "x"})))
    away = user.call(Request(GET_TASK, "/tasks/away"))
    print(json.dumps({"codes": [pooled.code, agent.status_code, moved.code, posted.code,
                                agent_post.status_code, seen_other.code, away.code],
                      "data": pooled.data, "heads": heads, "stolen": stolen}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
