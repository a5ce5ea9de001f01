"""The reference server against hostile clients: secrets in setups, big bodies, floods, slow peers."""

from __future__ import annotations

from collections.abc import Iterator

from harness.net.client import ApiClient
from tests.conftest import StartServer
from tests.server.test_api import assert_problem, data, run, wait_terminal

# -- item 10: /workers shows setups only as fingerprints --------------------------------------


def test_workers_show_another_keys_setup_only_as_a_fingerprint(start_server: StartServer) -> None:
    with start_server(extra_args=["--cloud-workers", "1", "--private-workers", "0"]) as srv, \
            ApiClient(srv.url, srv.keys[0]) as owner, ApiClient(srv.url, srv.keys[1]) as other:
        body = {"app": "infsh/echo", "setup": {"hf_token": "SECRET-OF-K1"}, "input": {"message": "m"}}
        wait_terminal(owner, run(owner, body)["id"])
        seen = other.workers()
        assert "SECRET-OF-K1" not in seen.text and "hf_token" not in seen.text
        fingerprint = data(seen)[0]["warm"]["setup"]["fingerprint"]
        # The same setup gives the same fingerprint, so warmth stays comparable.
        wait_terminal(other, run(other, body)["id"])
        assert data(other.workers())[0]["warm"]["setup"] == {"fingerprint": fingerprint}
        wait_terminal(other, run(other, {**body, "setup": {"hf_token": "other"}})["id"])
        assert data(other.workers())[0]["warm"]["setup"] != {"fingerprint": fingerprint}


# -- item 11: JSON bodies are capped ------------------------------------------------------------


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def forty_mb_setup(chunk: int = 64 * 1024) -> Iterator[bytes]:
    yield b'{"app": "infsh/echo", "input": {"message": "x"}, "setup": {"pad": "'
    for _ in range(40 * 1024 * 1024 // chunk):
        yield b"x" * chunk
    yield b'"}}'


def test_big_json_bodies_are_413_without_being_held(start_server: StartServer) -> None:
    with start_server() as srv, ApiClient(srv.url, srv.keys[0]) as api:
        before = rss_mb(srv.process.pid)
        whole = b"".join(forty_mb_setup())
        answers = [api.http.post("/apps/run", content=whole,
                                 headers={"Content-Type": "application/json"})]
        # Chunked, without Content-Length: the server must stop reading at the cap.
        answers += [api.http.post("/apps/run", content=forty_mb_setup(),
                                  headers={"Content-Type": "application/json"}) for _ in range(2)]
        answers.append(api.http.post("/files", content=whole,
                                     headers={"Content-Type": "application/json"}))
        for answer in answers:
            assert_problem(answer, 413, "payload_too_large")
        assert rss_mb(srv.process.pid) - before < 40, "the bodies were held"
        assert run(api, {"app": "infsh/echo", "input": {"message": "still serving"}})["id"]
