"""The reference server against hostile clients: secrets in setups, big bodies, floods, slow peers."""

from __future__ import annotations

from harness.net.client import ApiClient
from tests.conftest import StartServer
from tests.server.test_api import data, run, wait_terminal

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
