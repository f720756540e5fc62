"""A node with its Handle protocol listener on a free loopback port, and a client factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from app.main import create_app
from app.settings import Settings
from resolver.handle_protocol.client import HandleClient
from tests.conftest import _empty_tables, free_port

HOST = "127.0.0.1"


@dataclass
class NativeNode:
    app: Any
    http: httpx.AsyncClient
    port: int

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[HandleClient]:
        client = await HandleClient.connect(HOST, self.port)
        try:
            yield client
        finally:
            await client.close()


@asynccontextmanager
async def native_node(
    settings: Settings, *, fresh: bool = True, **overrides: Any
) -> AsyncIterator[NativeNode]:
    """``fresh=False``: keep what the database holds (a second node on the same one)."""
    port = free_port()
    configured = settings.model_copy(update={"handle_host": HOST, "handle_port": port, **overrides})
    if fresh:
        await _empty_tables(configured.database_url)
    application = create_app(configured)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://idnode.test") as http:
            yield NativeNode(application, http, configured.handle_port)
