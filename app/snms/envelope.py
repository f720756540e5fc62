"""The SNMS answer: ``{"status", "message", "data"}``, and how the node's errors become one.

SNMS clients read ``status`` from the body whatever the HTTP status is, and several can only
read a body that comes with a 2xx, so every business outcome (1, -1, -2, -3) is answered with
HTTP 200; only a fault of the node itself (-4) keeps its 5xx.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from app.api.errors import INTERNAL_ERROR, InternalError
from app.errors import InvalidRequest, TemplateViolation
from app.reporting.counters import count_answer
from resolver.errors import HandleAlreadyExists, HandleNotFound, IdnodeError

log = logging.getLogger("app.snms")

SUCCESS = 1
LOGIN_NEEDED = -1
FAILED = -2
FORBIDDEN = -3
INTERNAL = -4
ALREADY_EXISTS = "标识已存在"
NOT_FOUND = "标识不存在"
# The words SNMS clients log and some compare against, for the conditions SNMS names.
_MESSAGES: dict[type[IdnodeError], str] = {
    HandleAlreadyExists: ALREADY_EXISTS,
    HandleNotFound: NOT_FOUND,
}


def envelope(data: Any, status: int = SUCCESS, message: str = "success") -> dict[str, Any]:
    return {"status": status, "message": message, "data": data}


def answer(data: Any) -> Response:
    return Response(orjson.dumps(envelope(data)), media_type="application/json")


def outcome(exc: IdnodeError) -> tuple[int, str]:
    """The SNMS status and message for any of the node's errors, read from the class's own
    attributes (``status``) and, for the conditions SNMS has words for, its MRO."""
    if exc.status == 401:
        status = LOGIN_NEEDED
    elif exc.status == 403:
        status = FORBIDDEN
    elif exc.status >= 500:
        status = INTERNAL
    else:
        status = FAILED
    words = next((_MESSAGES[c] for c in type(exc).__mro__ if c in _MESSAGES), None)
    if isinstance(exc, TemplateViolation):
        detail = "; ".join(f"{f.get('name')} {f.get('message')}" for f in exc.fields)
        return status, f"非法操作，{detail}"
    return status, words or exc.message


def error_answer(exc: IdnodeError) -> Response:
    status, message = outcome(exc)
    count_answer(exc.status)
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
    return Response(
        orjson.dumps(envelope(None, status, message)),
        exc.status if status == INTERNAL else 200,
        headers=headers,
        media_type="application/json",
    )


class SnmsRoute(APIRoute):
    """A route whose every failure, in its dependencies too, is answered in the envelope."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def enveloped(request: Request) -> Response:
            try:
                return await handler(request)
            except IdnodeError as exc:
                return error_answer(exc)
            except RequestValidationError as exc:
                wrong = "; ".join(
                    f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}"
                    for e in exc.errors()
                )
                return error_answer(InvalidRequest(wrong))
            except Exception:
                log.exception("snms.unexpected_error", extra={"path": request.url.path})
                return error_answer(InternalError(INTERNAL_ERROR))

        return enveloped
