"""The Handle protocol door of the node (TCP and UDP), beside its HTTP one.

``native_listener`` runs in the lifespan of every ``idnode serve`` worker; the protocol's
codec and client live in ``resolver.handle_protocol``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from app.node import Node
from app.ports import PortTaken
from gateways.handle.listener import HandleListener, listening
from gateways.handle.operations import Operations
from resolver.handle_protocol.body import Site, ip_bytes

__all__ = ["HandleListener", "PortTaken", "native_listener"]


@asynccontextmanager
async def native_listener(node: Node) -> AsyncIterator[HandleListener | None]:
    """The listener on IDNODE_HANDLE_HOST:IDNODE_HANDLE_PORT; None when it is off (no host,
    port 0). Raises :class:`PortTaken` when the port is held by another program."""
    settings = node.settings
    host, port = settings.handle_host, settings.handle_port
    if host is None or port == 0:
        yield None
        return
    site = Site(ip_bytes(host), port, f"idnode {settings.node_prefix}")
    async with listening(
        Operations(node, site),
        host=host,
        port=port,
        idle_timeout=settings.handle_idle_timeout,
        max_message=settings.handle_max_message,
    ) as listener:
        yield listener
