"""Ceiling apps for the resolve benchmark: the least any server can do for the same answer.

- ``bytes_app``: a raw ASGI app answering every request with the bytes in the file named by
  ``CEILING_BODY_FILE`` (the node's own answer for the hot handle).
- ``lookup_app``: a raw ASGI app doing one asyncpg primary-key lookup in ``handles`` per
  request (``CEILING_DSN``) and answering with the stored values as Handle JSON.

Both are ASGI factories: ``granian --interface asgi --factory loadtests.ceiling:bytes_app``.
"""

from __future__ import annotations

import os
from typing import Any

import asyncpg

PREFIX_LEN = len("/api/handles/")


def bytes_app() -> Any:
    with open(os.environ["CEILING_BODY_FILE"], "rb") as body_file:
        body = body_file.read()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def lookup_app() -> Any:
    state: dict[str, asyncpg.Pool] = {}

    async def startup() -> None:
        state["pool"] = await asyncpg.create_pool(
            os.environ["CEILING_DSN"], min_size=4, max_size=10
        )

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send, startup)
            return
        handle = scope["path"][PREFIX_LEN:]
        async with state["pool"].acquire() as conn:
            values = await conn.fetchval(
                "SELECT values::text FROM handles WHERE handle = $1", handle
            )
        if values is None:
            status, body = 404, b'{"responseCode":100}'
        else:
            status = 200
            body = (
                b'{"responseCode":1,"handle":"'
                + handle.encode()
                + b'","values":'
                + values.encode()
                + b"}"
            )
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


async def _no_reset(_connection: Any) -> None:
    pass


async def _lifespan(receive: Any, send: Any, startup: Any = None) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            if startup is not None:
                await startup()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
