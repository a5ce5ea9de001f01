"""Fixtures: the reference server as a real uvicorn process on a free loopback port."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest

from harness.net.client import ApiClient
from harness.net.reference import ReferenceServer, fresh_keys, reference_server

# Tests shrink time, never checks: a 2 s rate window and phases 20x faster than real.
TEST_WINDOW = 2.0
TEST_SPEED = 20.0

StartServer = Callable[..., AbstractContextManager[ReferenceServer]]


@pytest.fixture(scope="session")
def server() -> Iterator[ReferenceServer]:
    """The shared clean reference server (two keys). Tests must not exhaust its limits."""
    with reference_server(fresh_keys(2), rate_window=TEST_WINDOW, speed=TEST_SPEED,
                          extra_args=["--heartbeat", "0.2"]) as running:
        yield running


@pytest.fixture
def start_server() -> StartServer:
    """Start a dedicated server (faults, odd settings); use it as a context manager."""

    def start(**kwargs: Any) -> AbstractContextManager[ReferenceServer]:
        kwargs.setdefault("rate_window", TEST_WINDOW)
        kwargs.setdefault("speed", TEST_SPEED)
        return reference_server(kwargs.pop("keys", None) or fresh_keys(2), **kwargs)

    return start


@pytest.fixture
def client(server: ReferenceServer) -> Iterator[ApiClient]:
    with ApiClient(server.url, server.keys[0]) as api:
        yield api


@pytest.fixture
def other_client(server: ReferenceServer) -> Iterator[ApiClient]:
    with ApiClient(server.url, server.keys[1]) as api:
        yield api
