"""The one map from domain errors to HTTP answers.

Under ``/api/handles`` an error is a Handle body ``{"responseCode", "handle", "message"}``;
elsewhere ``{"error": ClassName, "detail": ...}``. Expected outcomes are never a 500.
"""

from __future__ import annotations

import logging

import orjson
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from app import errors as node
from app.reporting.counters import count_answer
from resolver import errors as handle
from resolver import upstream

log = logging.getLogger("app.api.errors")

# error class -> (HTTP status, Handle responseCode)
STATUS: dict[type[Exception], tuple[int, int]] = {
    handle.InvalidHandle: (400, 102),
    handle.InvalidValue: (400, 202),
    handle.HandleNotFound: (404, 100),
    handle.HandleAlreadyExists: (409, 101),
    handle.ValuesNotFound: (400, 200),
    handle.ValueAlreadyExists: (409, 201),
    handle.NotResponsible: (400, 301),
    upstream.UpstreamUnavailable: (504, 301),
    upstream.UpstreamFailed: (502, 301),
    upstream.ResolutionLoop: (508, 301),
    node.InvalidRequest: (400, 4),
    node.RequestTooLarge: (413, 4),
    node.AuthenticationRequired: (401, 402),
    node.AuthenticationFailed: (401, 402),
    node.PermissionDenied: (403, 401),
    node.EnterpriseNotFound: (404, 100),
    node.PrefixTaken: (409, 101),
    node.GrantNotFound: (404, 100),
    node.ReaderTokenNotFound: (404, 100),
    node.TemplateNotFound: (404, 100),
    node.InvalidTemplate: (422, 202),
    node.TemplateViolation: (422, 202),
    node.InvalidHardwareId: (400, 4),
    node.DeviceNotFound: (404, 100),
    node.ProvisioningKeyNotFound: (404, 100),
    node.PublicKeyNotFound: (404, 100),
    node.ApplicationAlreadyMapped: (409, 101),
    node.BatchRejected: (422, 202),
    node.MetricsOff: (404, 100),
}
HANDLE_API = "/api/handles/"
INTERNAL_ERROR = "internal error; the operation was not completed"
CHALLENGE = {"WWW-Authenticate": 'Basic realm="idnode", Bearer'}


def handle_error_body(code: int, handle: str | None, message: str) -> bytes:
    """A Handle API error answer (shared with the lean path in ``app/api/fast.py``)."""
    if handle is None:
        return orjson.dumps({"responseCode": code, "message": message})
    return orjson.dumps({"responseCode": code, "handle": handle, "message": message})


def error_response(
    request: Request, exc: Exception, status: int, code: int, message: str
) -> Response:
    if request.url.path.startswith(HANDLE_API):
        body = handle_error_body(code, request.path_params.get("handle"), message)
    else:
        content: dict[str, object] = {"error": type(exc).__name__, "detail": message}
        if isinstance(exc, node.TemplateViolation):
            content["fields"] = exc.fields
        if isinstance(exc, node.BatchRejected):
            content["accepted"] = 0
            content["rejected"] = len(exc.results)
            content["results"] = exc.results
        body = orjson.dumps(content)
    headers = CHALLENGE if status == 401 else None
    return Response(body, status, headers=headers, media_type="application/json")


async def _domain(request: Request, exc: Exception) -> Response:
    status, code = STATUS.get(type(exc), (500, 2))
    count_answer(status)
    message = getattr(exc, "message", str(exc))
    if isinstance(exc, node.AuthenticationFailed):  # worth a line: someone may be guessing
        log.info("auth.failed", extra={"path": request.url.path, "reason": message})
    return error_response(request, exc, status, code, message)


async def _validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for error in exc.errors():
        if error.get("type") == "json_invalid":
            invalid = node.InvalidRequest("the request body is not valid JSON")
            return error_response(request, invalid, 400, 4, invalid.message)
        where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        problems.append(f"{where}: {error.get('msg')}" if where else str(error.get("msg")))
    invalid = node.InvalidRequest("; ".join(problems))
    status = 400 if request.url.path.startswith(HANDLE_API) else 422
    return error_response(request, invalid, status, 4, invalid.message)


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return Response(
        orjson.dumps({"error": "HTTPError", "detail": exc.detail}),
        exc.status_code,
        headers=exc.headers,
        media_type="application/json",
    )


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("api.unexpected_error", extra={"path": request.url.path})
    count_answer(500)
    return error_response(request, exc, 500, 2, INTERNAL_ERROR)


def install(app: FastAPI) -> None:
    app.add_exception_handler(handle.ResolverError, _domain)
    app.add_exception_handler(node.NodeError, _domain)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
