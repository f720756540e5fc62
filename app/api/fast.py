"""The lean resolve path: an anonymous ``GET /api/handles/{handle}`` without query parameters —
what machines and scanned labels send — is answered here, before FastAPI's routing,
dependency injection and validation (which cost a factor of 3-6 on this path). A cache hit
costs little more than writing its bytes; a miss resolves through the same engine.

Anything else (filters, credentials, forwarded requests) goes on to the FastAPI route. Both
build their answers with ``app/api/answers.py`` and ``app/api/errors.py``, so they send the
same status, headers and body (``IDNODE_LEAN_RESOLVE=false`` turns this path off, which the
tests use to compare the two).
"""

from __future__ import annotations

import logging

from starlette.types import Scope, Send

from app.api.answers import Headers, error_answer, not_found_answer, public_answer
from app.api.errors import INTERNAL_ERROR
from app.logs import RequestIds, request_id
from app.reporting.counters import count_answer
from app.state import state_of
from resolver.engine import Resolver
from resolver.errors import IdnodeError, InvalidHandle
from resolver.stats import perf_counter

log = logging.getLogger("app.api.fast")
PREFIX = "/api/handles/"
_SKIP = len(PREFIX)
_SLOW_HEADERS = frozenset({b"authorization", b"x-idnode-via", b"x-idnode-hops"})


class FastResolve:
    """Answers plain anonymous resolves from the cache and the engine, in front of FastAPI.

    Called by :class:`app.main.NodeApp` before FastAPI's own middleware (telemetry, error
    and body-limit layers cost more than a cache hit itself); returns False for anything it
    leaves to FastAPI.
    """

    def __init__(self, ids: RequestIds) -> None:
        self._ids = ids

    async def __call__(self, scope: Scope, send: Send) -> bool:
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or scope["query_string"]
            or not scope["path"].startswith(PREFIX)
        ):
            return False
        if_none_match = offered_id = None
        for name, value in scope["headers"]:
            if name in _SLOW_HEADERS:
                return False
            if name == b"if-none-match":  # repeated lines form one list (RFC 9110 5.3)
                tag = value.decode("latin-1")
                if_none_match = tag if if_none_match is None else f"{if_none_match}, {tag}"
            elif name == b"x-request-id":
                offered_id = value
        resolver = state_of(scope)["node"].resolver
        started = perf_counter()
        rid = self._ids.take(offered_id)
        text = scope["path"][_SKIP:]
        entry = resolver.cached(text, started)
        if entry is not None:
            if entry.found:
                parts = public_answer(entry, resolver.cache.clock(), if_none_match)
            else:
                parts = not_found_answer(text)
        else:
            token = request_id.set(rid)  # a miss may log; a hit never does
            try:
                parts = await _resolve(resolver, text, if_none_match, started)
            finally:
                request_id.reset(token)
        await _send(send, *parts, rid)
        return True


async def _resolve(
    resolver: Resolver, text: str, if_none_match: str | None, started: float
) -> tuple[int, Headers, bytes]:
    try:
        handle = resolver.parse(text, started)
    except InvalidHandle as exc:
        return error_answer(exc.status, exc.response_code, text, exc.message)
    try:
        entry = await resolver.resolve(handle, started=started)
    except IdnodeError as exc:
        count_answer(exc.status)
        return error_answer(exc.status, exc.response_code, text, exc.message, exc.retry_after)
    except Exception:  # the same last resort as the routed path's error handler
        log.exception("api.unexpected_error", extra={"path": PREFIX + text})
        count_answer(500)
        return error_answer(500, 2, text, INTERNAL_ERROR)
    return public_answer(entry, resolver.cache.clock(), if_none_match)


async def _send(send: Send, status: int, headers: Headers, body: bytes, rid: str) -> None:
    raw = [(k.encode(), v.encode()) for k, v in headers]
    raw.append((b"x-request-id", rid.encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
