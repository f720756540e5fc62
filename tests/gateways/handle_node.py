"""A node with its Handle protocol listener on a free loopback port, and a client factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from app.settings import Settings
from resolver.handle_protocol.client import HandleClient
from tests.conftest import asgi_client, free_port, running_app

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
    async with (
        running_app(configured, emptied=fresh) as application,
        asgi_client(application) as http,
    ):
        yield NativeNode(application, http, configured.handle_port)
