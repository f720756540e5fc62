"""How HTTP answers errors.

A domain error (``resolver.errors.IdnodeError``) carries its own HTTP status and Handle
``responseCode``. Under ``/api/handles`` it is answered as a Handle body ``{"responseCode",
"handle", "message"}``; elsewhere as ``{"error": name, "detail": ...}``. Expected outcomes are
never a 500.
"""

from __future__ import annotations

import logging

import orjson
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from app import errors as node
from app.reporting.counters import count_answer
from resolver.errors import IdnodeError

log = logging.getLogger("app.api.errors")

HANDLE_API = "/api/handles/"
INTERNAL_ERROR = "internal error; the operation was not completed"
CHALLENGE = {"WWW-Authenticate": 'Basic realm="idnode", Bearer'}


def handle_error_body(code: int, handle: str | None, message: str) -> bytes:
    """A Handle API error answer (shared with the lean path in ``app/api/fast.py``)."""
    if handle is None:
        return orjson.dumps({"responseCode": code, "message": message})
    return orjson.dumps({"responseCode": code, "handle": handle, "message": message})


def error_response(request: Request, exc: IdnodeError) -> Response:
    handle_api = request.url.path.startswith(HANDLE_API)
    if handle_api and not isinstance(exc, node.TemplateViolation):
        body = handle_error_body(exc.response_code, request.path_params.get("handle"), exc.message)
    else:
        content: dict[str, object] = {"error": exc.name, "detail": exc.message}
        if isinstance(exc, node.TemplateViolation):
            # The identifiers API's body on every door; the Handle API's fields as well.
            content["fields"] = exc.fields
            if handle_api:
                content = {"responseCode": exc.response_code, **content}
                content["handle"] = request.path_params.get("handle")
        if isinstance(exc, node.BatchRejected):
            content["accepted"] = 0
            content["rejected"] = len(exc.results)
            content["results"] = exc.results
        body = orjson.dumps(content)
    return Response(body, exc.status, headers=_headers(exc), media_type="application/json")


def _headers(exc: IdnodeError) -> dict[str, str] | None:
    if exc.status == 401:
        return CHALLENGE
    if exc.retry_after is not None:
        return {"Retry-After": str(exc.retry_after)}
    return None


async def _domain(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, IdnodeError)
    count_answer(exc.status)  # failed authentication is logged per burst by app.throttle
    return error_response(request, exc)


async def _validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for error in exc.errors():
        if error.get("type") == "json_invalid":
            return error_response(
                request, node.InvalidRequest("the request body is not valid JSON")
            )
        where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        problems.append(f"{where}: {error.get('msg')}" if where else str(error.get("msg")))
    invalid = node.InvalidRequest("; ".join(problems))
    if not request.url.path.startswith(HANDLE_API):
        invalid = node.InvalidFields(invalid.message)
    return error_response(request, invalid)


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if isinstance(exc.__cause__, IdnodeError):  # FastAPI wraps errors raised reading a body
        return await _domain(request, exc.__cause__)
    return Response(
        orjson.dumps({"error": "HTTPError", "detail": exc.detail}),
        exc.status_code,
        headers=exc.headers,
        media_type="application/json",
    )


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("api.unexpected_error", extra={"path": request.url.path})
    count_answer(500)
    return error_response(request, InternalError(INTERNAL_ERROR))


class InternalError(IdnodeError):
    """What a client is told of a fault in the node itself (details go to the log only)."""

    status = 500
    response_code = 2


def install(app: FastAPI) -> None:
    app.add_exception_handler(IdnodeError, _domain)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
