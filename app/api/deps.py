"""Request dependencies: the node, the caller, the write transaction, the JSON body."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import ANONYMOUS, Principal, authenticate, claimed
from app.errors import (
    AuthenticationFailed,
    AuthenticationRequired,
    InvalidRequest,
    PermissionDenied,
    RequestTooLarge,
)
from app.node import Node
from app.state import state_of
from app.storage.invalidation import evict_touched
from resolver.text import first_problem, problem


def current_node(request: Request) -> Node:
    return state_of(request.scope)["node"]


NodeDep = Annotated[Node, Depends(current_node)]


# Declared as a security scheme so the OpenAPI document says which operations read it.
CREDENTIALS = APIKeyHeader(
    name="Authorization",
    scheme_name="credentials",
    description="Bearer <token> (operator, enterprise or reader token), or "
    "Basic 300:<prefix>/ADMIN with the enterprise secret.",
    auto_error=False,
)


async def caller(
    request: Request, node: NodeDep, header: Annotated[str | None, Security(CREDENTIALS)] = None
) -> Principal:
    if not header:
        return ANONYMOUS
    address = request.client.host if request.client else None
    credential = claimed(header)
    node.attempts.check("http", address=address, credential=credential)
    try:
        async with node.database.read_session() as session:
            return await authenticate(session, header, operator_token=node.operator_token)
    except AuthenticationFailed as exc:
        node.attempts.failed("http", address=address, credential=credential, reason=exc.message)
        raise


CallerDep = Annotated[Principal, Depends(caller)]


def require_credentials(principal: Principal) -> None:
    if principal.is_anonymous:
        raise AuthenticationRequired(
            "this needs credentials: Bearer <token> (or Basic 300:<prefix>/ADMIN with the secret)"
        )


def owner_or_operator(principal: Principal, prefix: str) -> None:
    """Raise unless the caller is the operator or the enterprise holding ``prefix``."""
    require_credentials(principal)
    if not (principal.is_operator or principal.owns(prefix.upper())):
        raise PermissionDenied("only the operator or the enterprise itself may do this")


async def operator(principal: CallerDep) -> Principal:
    require_credentials(principal)
    if not principal.is_operator:
        raise PermissionDenied("only the node operator may do this (Bearer <operator token>)")
    return principal


async def write_session(node: NodeDep) -> AsyncIterator[AsyncSession]:
    """The request's one transaction: committed when the endpoint returns, else rolled back."""
    async with node.database.write_session() as session:
        yield session
        await session.commit()
        evict_touched(session, node.resolver.cache)


# scope="function": commit before the response is sent, so a client that reads right after
# a successful write sees it.
WriteSession = Annotated[AsyncSession, Depends(write_session, scope="function")]


async def json_body(request: Request) -> Any:
    """The parsed JSON body, refusing malformed ones with clear errors (oversized and slow
    ones are refused as they are read: ``app/api/bodies.py``; typed bodies are checked by
    ``app/api/schemas.py``)."""
    body = await request.body()
    if not body:
        raise InvalidRequest("the request body is empty; a JSON document was expected")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"the request body is not valid JSON: {exc}") from exc
    if (found := first_problem(document, "body")) is not None:
        raise InvalidRequest(found)
    return document


async def plain_parameters(request: Request) -> None:
    """Every path and query parameter of every route is text from outside too: checked
    once here (``resolver/text.py``), naming the parameter."""
    for name, value in [*request.path_params.items(), *request.query_params.multi_items()]:
        if name == "handle":  # the identifier grammar checks it, answering INVALID_HANDLE
            continue
        if isinstance(value, str) and (found := problem(value)):
            raise InvalidRequest(f"{name}: {found}")


def refuse_declared_size(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise RequestTooLarge(f"request body of {declared} bytes exceeds the limit of {limit}")


async def read_body(request: Request, limit: int) -> bytearray:
    """The whole body, refused (413) as soon as it is known to exceed ``limit`` bytes."""
    refuse_declared_size(request, limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise RequestTooLarge(f"request body exceeds the limit of {limit} bytes")
    return body
