"""One reference server assembled: its routes, error handlers and background eviction."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException

from harness.server.config import ServerConfig
from harness.server.routes import ReferenceApi, http_error, server_error

__all__ = ["ServerConfig", "create_app"]


def create_app(config: ServerConfig) -> Starlette:
    """Build the Starlette application for one reference server."""
    api = ReferenceApi(config)
    app = Starlette(
        routes=api.routes(),
        lifespan=_lifespan(api),
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )
    app.state.api = api
    return app


def _lifespan(api: ReferenceApi) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        sweeper = asyncio.get_running_loop().create_task(_sweep(api))
        try:
            yield
        finally:
            sweeper.cancel()
            await api.engine.stop()
            await api.agents.stop_all()

    return lifespan


async def _sweep(api: ReferenceApi) -> None:
    """Evict expired tasks, files and chats once a second (retention and caps)."""
    while True:
        await asyncio.sleep(1.0)
        api.engine.evict()
        api.files.evict()
        api.agents.evict()
