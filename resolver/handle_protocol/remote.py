"""Asking other nodes over the Handle protocol (``hdl://host:port``), and choosing between it
and Handle REST by the scheme of a node's address.

Connections are long and reused (a few per node); one that fails is dropped and the next
request opens a new one. The hop count travels in the message header's recursion count, so
nodes pointing at each other stop after ``max_hops`` as they do over HTTP (the Handle
protocol has no room for the list of nodes passed).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from typing import Protocol

from resolver.errors import InvalidValue
from resolver.handle_protocol.bodies import Query
from resolver.handle_protocol.client import (
    Answer,
    HandleClient,
    HandleProtocolError,
    request_message,
)
from resolver.handle_protocol.message import (
    OC_RESOLUTION,
    RC_HANDLE_NOT_FOUND,
    RC_SUCCESS,
    MalformedMessage,
    Message,
)
from resolver.record import Record
from resolver.upstream import UpstreamFailed, UpstreamUnavailable
from resolver.values import parse_values

SCHEME = "hdl://"
MAX_RECURSION = 255  # the header's recursion count is one byte


class Remote(Protocol):
    """Resolves an identifier at another node."""

    async def resolve(
        self, base_url: str, handle: str, *, hops: int, via: tuple[str, ...]
    ) -> Record | None: ...


def native_address(base_url: str) -> tuple[str, int]:
    """``hdl://host:port`` as (host, port)."""
    host, _, port = base_url[len(SCHEME) :].rstrip("/").rpartition(":")
    if not host or not port.isdigit():
        raise UpstreamFailed(f"{base_url} is not hdl://host:port")
    return host.strip("[]"), int(port)


class HandleProtocolRemote:
    """Resolves at nodes speaking the Handle protocol, over pooled TCP connections."""

    def __init__(self, *, wait: float, connections: int = 4) -> None:
        self._wait = wait
        self._connections = connections
        self._idle: dict[tuple[str, int], list[HandleClient]] = {}
        self._slots: dict[tuple[str, int], asyncio.Semaphore] = {}

    async def resolve(
        self, base_url: str, handle: str, *, hops: int, via: tuple[str, ...]
    ) -> Record | None:
        address = native_address(base_url)
        request = replace(
            request_message(OC_RESOLUTION, Query(handle).pack()),
            recursion=min(hops + 1, MAX_RECURSION),
        )
        async with self._slots.setdefault(address, asyncio.Semaphore(self._connections)):
            answer = await self._send(address, request, f"{base_url} for {handle}")
        if answer.code == RC_HANDLE_NOT_FOUND:
            return None
        if answer.code != RC_SUCCESS:
            raise UpstreamFailed(
                f"{base_url} answered code {answer.code} for {handle}: {answer.error}"
            )
        try:
            _, raw = answer.values()
            values = parse_values(raw)
        except (MalformedMessage, InvalidValue) as exc:
            raise UpstreamFailed(f"{base_url} answered invalid values: {exc.message}") from exc
        stamps = {item.get("index"): item.get("timestamp", "") for item in raw}
        return Record(
            handle,
            tuple(
                replace(v, timestamp=str(stamps.get(v.index) or ""))
                for v in sorted(values, key=lambda v: v.index)
            ),
        )

    async def _send(self, address: tuple[str, int], request: Message, what: str) -> Answer:
        """Send on an idle connection, or a new one; a reused connection the other node has
        closed meanwhile (idle timeout) is dropped and the request sent once more."""
        idle = self._idle.setdefault(address, [])
        while True:
            reused = bool(idle)
            try:
                client = (
                    idle.pop() if reused else await HandleClient.connect(*address, wait=self._wait)
                )
                answer = await client.send(request)
            except (HandleProtocolError, MalformedMessage) as exc:
                if reused:
                    await client.close()
                    continue
                raise UpstreamUnavailable(f"{what}: no answer ({exc})") from exc
            idle.append(client)
            return answer

    async def aclose(self) -> None:
        for clients in self._idle.values():
            for client in clients:
                with contextlib.suppress(HandleProtocolError):
                    await client.close()
        self._idle.clear()


class Remotes:
    """Other nodes, by the scheme of their address: ``hdl://`` speaks the Handle protocol,
    anything else Handle REST."""

    def __init__(self, rest: Remote, native: Remote) -> None:
        self._rest = rest
        self._native = native

    async def resolve(
        self, base_url: str, handle: str, *, hops: int, via: tuple[str, ...]
    ) -> Record | None:
        remote = self._native if base_url.startswith(SCHEME) else self._rest
        return await remote.resolve(base_url, handle, hops=hops, via=via)
