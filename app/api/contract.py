"""The OpenAPI document describes every answer the node gives, not only the happy ones.

FastAPI documents each operation's success and a 422 in its own ``HTTPValidationError``
shape; the node answers errors in its own shapes (``app/api/errors.py``) with many more
statuses. Rather than a ``responses=`` list on every route, the statuses an operation can
answer are derived here from what the route is, once, when the document is built:

- any operation: 400 (a malformed parameter or body) and 503 (a dependency is down);
- FastAPI-validated parameters or body: 422;
- credentials read (the operation has ``security``): 401, 403 and 429 (throttled guessing);
- parameters or a body (what they name may not exist): 404; writes: 404 and 409;
- bodies (POST, PUT, PATCH): 408 (too slow) and 413 (too large);
- resolving an identifier (GET with a ``handle``): 502, 504 and 508 from other nodes.

Errors are ``{"error", "detail"}`` bodies, Handle ``{"responseCode", "message"}`` bodies under
``/api/handles/``, and also HTML pages on routes that answer HTML.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.api.errors import HANDLE_API

ERROR = "Error"
HANDLE_ERROR = "HandleError"
SCHEMAS: dict[str, dict[str, Any]] = {
    ERROR: {
        "type": "object",
        "required": ["error", "detail"],
        "properties": {
            "error": {"type": "string", "description": "The condition, e.g. InvalidRequest."},
            "detail": {"type": "string", "description": "What is wrong, naming the field."},
            "fields": {"type": "array", "items": {"type": "object"}},
            "accepted": {"type": "integer"},
            "rejected": {"type": "integer"},
            "results": {"type": "array", "items": {"type": "object"}},
        },
    },
    HANDLE_ERROR: {
        "type": "object",
        "required": ["responseCode", "message"],
        "properties": {
            "responseCode": {"type": "integer", "description": "Handle response code."},
            "handle": {"type": "string"},
            "message": {"type": "string"},
        },
    },
}
DESCRIPTIONS = {
    400: "Malformed request: a parameter or the body (the answer names it)",
    401: "Credentials missing or wrong",
    403: "The caller may not do this",
    404: "Not found",
    408: "The request body did not arrive in time",
    409: "Conflicts with what exists",
    413: "Request body too large",
    422: "The body or parameters break their schema (the answer names each field)",
    429: "Too many failed authentications; see Retry-After",
    502: "Another node could not be reached",
    503: "A dependency is unavailable; see Retry-After",
    504: "Another node did not answer in time",
    508: "The resolution looped between nodes",
}
WRITES = {"POST", "PUT", "PATCH", "DELETE"}
BODIES = {"POST", "PUT", "PATCH"}
VALIDATION = ("HTTPValidationError", "ValidationError")


def install(app: FastAPI) -> None:
    """Build the app's OpenAPI document with every answer described (once, when asked)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = described(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def described(app: FastAPI) -> dict[str, Any]:
    schema = get_openapi(
        title=app.title, version=app.version, summary=app.summary, routes=app.routes
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name in VALIDATION:
        components.pop(name, None)
    components.update(SCHEMAS)
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            content = _error_content(path, responses)
            responses.pop("422", None)  # FastAPI's shape; added back below in ours
            for status, declared in responses.items():  # errors a route declares itself
                if status[0] in "45" and "content" not in declared:
                    declared["content"] = content
            for status in sorted(statuses(path, method.upper(), operation)):
                # A route's own declaration (e.g. /readyz's 503 body) stands.
                responses.setdefault(
                    str(status), {"description": DESCRIPTIONS[status], "content": content}
                )
    return schema


def statuses(path: str, method: str, operation: dict[str, Any]) -> set[int]:
    """The error statuses an operation can answer (see the module's docstring)."""
    where = {p["in"] for p in operation.get("parameters", [])}
    found = {400, 503}
    if where & {"path", "query"} or "requestBody" in operation:
        found.add(422)
    if operation.get("security"):
        found |= {401, 403, 429}
    if where & {"path", "query"} or "requestBody" in operation:
        found.add(404)  # what a parameter or the body names may not exist
    if method in WRITES:
        found |= {404, 409}
    if method in BODIES:
        found |= {408, 413}
    if method == "GET" and "{handle}" in path:
        found |= {502, 504, 508}
    return found


def _error_content(path: str, responses: dict[str, Any]) -> dict[str, Any]:
    shape = HANDLE_ERROR if path.startswith(HANDLE_API) else ERROR
    content: dict[str, Any] = {
        "application/json": {"schema": {"$ref": f"#/components/schemas/{shape}"}}
    }
    if any("text/html" in r.get("content", {}) for r in responses.values()):
        content["text/html"] = {"schema": {"type": "string"}}
    return content
