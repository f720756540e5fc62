"""The Handle.Net-compatible REST API: ``/api/handles/{handle}`` (shared/DESIGN.md section 3)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Response

from app.api.deps import CallerDep, NodeDep, WriteSession, json_body
from app.errors import InvalidRequest
from app.registry import handles as service
from resolver.errors import ValuesNotFound
from resolver.identifier import parse_handle
from resolver.record import Record, encode, record_body
from resolver.values import parse_values, request_values

router = APIRouter(prefix="/api/handles", tags=["Handle REST API"])

JSON = "application/json"
TypeFilter = Annotated[
    list[str], Query(alias="type", description="Only values of this type (repeatable).")
]
IndexParam = Annotated[
    list[str],
    Query(description="Only values with this index (repeatable; 'various' on PUT = all sent)."),
]
Pretty = Annotated[bool, Query(description="Indent the JSON answer.")]
Body = Annotated[Any, Depends(json_body)]
VALUES_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            JSON: {
                "schema": {"type": "object", "properties": {"values": {"type": "array"}}},
                "example": {
                    "values": [
                        {
                            "index": 1,
                            "type": "URL",
                            "data": {"format": "string", "value": "https://example.com/p/1"},
                        }
                    ]
                },
            }
        },
    }
}


def _indexes(raw: list[str]) -> list[int]:
    try:
        return [int(i) for i in raw]
    except ValueError as exc:
        raise InvalidRequest(f"index must be a whole number, got {', '.join(raw)}") from exc


def _answer(record: Record, *, status: int = 200, code: int = 1, pretty: bool = False) -> Response:
    body = encode(record_body(record, response_code=code), pretty=pretty)
    return Response(body, status, media_type=JSON)


@router.get("/{handle:path}", summary="Resolve an identifier")
async def resolve(
    handle: str,
    node: NodeDep,
    principal: CallerDep,
    types: TypeFilter = [],  # noqa: B006 - FastAPI copies defaults
    index: IndexParam = [],  # noqa: B006
    publicOnly: Annotated[  # noqa: N803 - the Handle API's own parameter name
        bool | None,
        Query(description="Only public values; default true when not authenticated."),
    ] = None,
    pretty: Pretty = False,
) -> Response:
    """Every value of ``handle`` the caller may read, or those matching any filter."""
    parsed = parse_handle(handle)
    record = await node.resolver.resolve(parsed)
    public_only = principal.is_anonymous if publicOnly is None else publicOnly
    view = service.visible_to(principal, parsed, record, public_only=public_only)
    selected = view.select(types, _indexes(index))
    if (types or index) and not selected.values:
        body = {
            **record_body(selected, response_code=ValuesNotFound.response_code),
            "message": "no value matches the type/index filters",
        }
        return Response(encode(body, pretty=pretty), 200, media_type=JSON)
    return _answer(selected, pretty=pretty)


@router.put("/{handle:path}", summary="Create or replace an identifier", openapi_extra=VALUES_BODY)
async def put(
    handle: str,
    node: NodeDep,
    principal: CallerDep,
    session: WriteSession,
    body: Body,
    index: IndexParam = [],  # noqa: B006
    overwrite: Annotated[
        bool, Query(description="false: refuse when the handle (or an indexed value) exists.")
    ] = True,
    mintNewSuffix: Annotated[  # noqa: N803
        bool, Query(description="true: the node appends a new unique suffix to the handle.")
    ] = False,
    idempotency_key: Annotated[
        str | None, Header(description="With mintNewSuffix: a retry returns the first result.")
    ] = None,
    pretty: Pretty = False,
) -> Response:
    """Body: ``{"values": [...]}``, a bare array of values, or one value.

    With ``index=`` only those values are added or replaced (``index=various``: every value
    sent). Answers 201 when the handle was created, 200 when it was replaced or changed.
    """
    values = parse_values(request_values(body))
    settings = node.settings
    if mintNewSuffix:
        record, created = await service.mint_record(
            session,
            handle,
            values,
            principal=principal,
            node_prefix=settings.node_prefix,
            idempotency_key=idempotency_key,
        )
    else:
        indexes = None
        if index:
            indexes = [v.index for v in values] if index == ["various"] else _indexes(index)
        record, created = await service.put_record(
            session,
            parse_handle(handle),
            values,
            principal=principal,
            node_prefix=settings.node_prefix,
            indexes=indexes,
            overwrite=overwrite,
        )
    return _answer(record, status=201 if created else 200, pretty=pretty)


@router.post(
    "/{handle:path}",
    summary="Mint an identifier with a node-chosen suffix",
    openapi_extra=VALUES_BODY,
    status_code=201,
)
async def mint(
    handle: str,
    node: NodeDep,
    principal: CallerDep,
    session: WriteSession,
    body: Body,
    idempotency_key: Annotated[
        str | None, Header(description="A retry with the same key returns the first result.")
    ] = None,
    pretty: Pretty = False,
) -> Response:
    """``POST /api/handles/88.999.1`` creates ``88.999.1/<uuid>``; ``.../BATCH-`` a suffix
    ``BATCH-<uuid>``. The same as ``PUT ...?mintNewSuffix=true``."""
    record, created = await service.mint_record(
        session,
        handle,
        parse_values(request_values(body)),
        principal=principal,
        node_prefix=node.settings.node_prefix,
        idempotency_key=idempotency_key,
    )
    return _answer(record, status=201 if created else 200, pretty=pretty)


@router.delete("/{handle:path}", summary="Delete an identifier, or some of its values")
async def delete(
    handle: str,
    node: NodeDep,
    principal: CallerDep,
    session: WriteSession,
    index: IndexParam = [],  # noqa: B006
    pretty: Pretty = False,
) -> Response:
    """Without ``index=`` the whole handle is deleted; with it, only those values."""
    parsed = parse_handle(handle)
    remaining = await service.delete_record(
        session,
        parsed,
        principal=principal,
        node_prefix=node.settings.node_prefix,
        indexes=_indexes(index) or None,
    )
    return _answer(remaining or Record(str(parsed), ()), pretty=pretty)
