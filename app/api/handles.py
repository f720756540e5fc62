"""The Handle.Net-compatible REST API: ``/api/handles/{handle}`` (docs/domain.md section 3)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Header, Query, Request, Response

from app.api.answers import Headers, answer, cache_control, public_answer
from app.api.deps import CallerDep, NodeDep, WriteSession, json_body
from app.auth import Principal
from app.errors import InvalidRequest
from app.node import Node
from app.registry.identifiers import handles as service
from app.registry.identifiers import history
from app.storage.database import AsyncSession
from resolver.cache import etag_of
from resolver.engine import SITE_TYPE, site_url
from resolver.errors import NotResponsible, ValuesNotFound
from resolver.identifier import Handle, parse_handle
from resolver.record import Record, encode, record_body
from resolver.upstream import HOPS_HEADER
from resolver.values import parse_values, request_values

router = APIRouter(prefix="/api/handles", tags=["Handle REST API"])

JSON = "application/json"
PREFIX_REFERRAL = 303
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


@router.get(
    "/{handle:handle}",
    summary="Resolve an identifier",
    responses={
        304: {"description": "Not modified (If-None-Match matched the ETag)"},
        300: {"description": "Prefix referral (responseCode 303) with referral=true"},
    },
)
async def resolve(
    handle: str,
    request: Request,
    node: NodeDep,
    principal: CallerDep,
    types: TypeFilter = [],  # noqa: B006 - FastAPI copies defaults
    index: IndexParam = [],  # noqa: B006
    publicOnly: Annotated[  # noqa: N803 - the Handle API's own parameter name
        bool | None,
        Query(description="Only public values; default true when not authenticated."),
    ] = None,
    pretty: Pretty = False,
    referral: Annotated[
        bool,
        Query(
            description="For a prefix hosted by an enterprise node: answer where it is "
            "(303 referral) instead of asking that node."
        ),
    ] = False,
    at: Annotated[
        str | None,
        Query(
            description="ISO 8601 time (e.g. 2026-11-26T08:30:00Z): the record as it was then "
            "(identifiers this node holds)."
        ),
    ] = None,
    x_idnode_hops: Annotated[str | None, Header(include_in_schema=False)] = None,
    x_idnode_via: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    """Every value of ``handle`` the caller may read, or those matching any filter.

    Answers carry an ``ETag`` (``If-None-Match`` gives 304) and, for public answers,
    ``Cache-Control: public, max-age=<remaining lifetime>``. An answer served from an
    expired entry because the node holding it is unreachable says ``X-Idnode-Stale: true``.
    With ``at=`` the answer comes from the identifier's history, never from the cache.
    """
    resolver = node.resolver
    parsed = resolver.parse(handle)
    public_only = principal.is_anonymous if publicOnly is None else publicOnly
    if at is not None:
        view = View(types, _indexes(index), public_only, pretty)
        return await _resolve_at(node, principal, parsed, history.parse_moment(at), view)
    # Repeated If-None-Match lines form one list (RFC 9110 section 5.3).
    if_none_match = ", ".join(request.headers.getlist("if-none-match")) or None
    if referral:
        prefix_record = await resolver.referral(parsed)
        if prefix_record is not None:
            return _referral(parsed, prefix_record, pretty)
    entry = await resolver.resolve(parsed, hops=_hops(x_idnode_hops), via=_via(x_idnode_via))
    now = resolver.cache.clock()
    privileged = not public_only and await _privileged(node, principal, parsed)
    if not (types or index or pretty or privileged):
        return _response(public_answer(entry, now, if_none_match))
    body = View(types, _indexes(index), public_only, pretty).body(
        entry.record(), privileged=privileged
    )
    control = cache_control(entry, now, public=not privileged)
    return _response(answer(body, etag_of(body), control, if_none_match, stale=entry.stale))


@dataclass(frozen=True)
class View:
    """What a resolve asked to see of a record."""

    types: list[str]
    indexes: list[int]
    public_only: bool
    pretty: bool

    def body(self, record: Record, *, privileged: bool) -> bytes:
        selected = history.visible(record, privileged=privileged).select(self.types, self.indexes)
        code = 1
        extra: dict[str, str] = {}
        if (self.types or self.indexes) and not selected.values:
            code, extra = ValuesNotFound.response_code, {"message": "no value matches the filters"}
        return encode({**record_body(selected, response_code=code), **extra}, pretty=self.pretty)


async def _privileged(node: Node, principal: Principal, handle: Handle) -> bool:
    if principal.is_anonymous:
        return False
    async with node.database.read_session() as session:
        return await service.can_read_restricted(session, principal, handle)


async def record_then(node: Node, session: AsyncSession, handle: Handle, at: datetime) -> Record:
    """The record of an identifier this node holds as it was at ``at`` (404 if it did not
    exist then)."""
    if not node.resolver.is_local(handle):
        raise NotResponsible(
            f"history is kept for identifiers under {node.settings.node_prefix} only"
        )
    record = await history.record_at(session, handle, at)
    if record is None:
        raise history.not_at(handle, at)
    return record


async def _resolve_at(
    node: Node, principal: Principal, handle: Handle, at: datetime, view: View
) -> Response:
    """The record as it was at ``at``, from history: never from or into the cache."""
    async with node.database.read_session() as session:
        record = await record_then(node, session, handle, at)
        privileged = not view.public_only and await service.can_read_restricted(
            session, principal, handle
        )
    body = view.body(record, privileged=privileged)
    return Response(
        body,
        headers={"etag": etag_of(body), "cache-control": "private, no-cache"},
        media_type=JSON,
    )


def _response(parts: tuple[int, Headers, bytes]) -> Response:
    status, headers, body = parts
    return Response(body, status, headers=dict(headers))


def _hops(raw: str | None) -> int:
    if raw is None:
        return 0
    if not raw.strip().isdigit():
        raise InvalidRequest(f"{HOPS_HEADER} must be a whole number")
    return int(raw)


def _via(raw: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (raw or "").split(",") if part.strip())


def _referral(handle: Handle, prefix_record: Record, pretty: bool) -> Response:
    site = site_url(prefix_record)
    assert site is not None  # Resolver.referral answers only prefixes it can send elsewhere
    body = {
        **record_body(prefix_record.select([SITE_TYPE]), response_code=PREFIX_REFERRAL),
        "handle": str(handle),
        "message": f"prefix {handle.prefix} is served by {site}",
    }
    location = f"{site.rstrip('/')}/api/handles/{quote(str(handle), safe='/:@')}"
    return Response(
        encode(body, pretty=pretty), 300, headers={"location": location}, media_type=JSON
    )


@router.put(
    "/{handle:handle}", summary="Create or replace an identifier", openapi_extra=VALUES_BODY
)
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
            conform=True,
        )
    node.activity.registrations["api"] += created
    return _answer(record, status=201 if created else 200, pretty=pretty)


@router.post(
    "/{handle:handle}",
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
    node.activity.registrations["api"] += created
    return _answer(record, status=201 if created else 200, pretty=pretty)


@router.delete("/{handle:handle}", summary="Delete an identifier, or some of its values")
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
        conform=True,
    )
    return _answer(remaining or Record(str(parsed), ()), pretty=pretty)
