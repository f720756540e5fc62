"""The lean resolve path: a cache hit for an anonymous ``GET /api/handles/{handle}`` is
answered here, before FastAPI's routing, dependency injection and validation (which cost a
factor of 3-6 on this path). Anything else — misses, filters, credentials, forwarded
requests — goes on to the FastAPI route, which answers through the same
:func:`app.api.answers.public_answer`, so both paths send the same status, headers and body.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.answers import not_found_answer, public_answer

PREFIX = "/api/handles/"
_SKIP = 13  # len(PREFIX)
_SLOW_HEADERS = frozenset({b"authorization", b"x-idnode-via", b"x-idnode-hops"})


class FastResolve:
    """ASGI middleware serving fresh, public cache hits straight from their bytes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or scope["query_string"]
            or not scope["path"].startswith(PREFIX)
        ):
            await self.app(scope, receive, send)
            return
        if_none_match = None
        for name, value in scope["headers"]:
            if name in _SLOW_HEADERS:
                await self.app(scope, receive, send)
                return
            if name == b"if-none-match":
                if_none_match = value.decode("latin-1")
        node: Any = scope["app"].state.node
        cache = node.resolver.cache
        key = scope["path"][_SKIP:]
        entry = cache.fresh(key)
        if entry is None:
            await self.app(scope, receive, send)
            return
        if entry.found:
            status, headers, body = public_answer(entry, cache.clock(), if_none_match)
        else:
            status, headers, body = not_found_answer(key)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.encode(), v.encode()) for k, v in headers],
            }
        )
        await send({"type": "http.response.body", "body": body})
