"""``/api/v1/identifiers`` and ``/api/v1/search``: identifiers by their template attributes,
and the QR code a label carries."""

from __future__ import annotations

import io
from typing import Annotated, Any, Literal
from urllib.parse import quote

import segno
from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import Field

from app.api.deps import CallerDep, NodeDep, WriteSession, require_credentials
from app.api.handles import record_then
from app.api.schemas import RequestBody
from app.node import Node
from app.registry.identifiers import history
from app.registry.identifiers import search as finder
from app.registry.identifiers import templated as service
from app.registry.templates import FOOD_BATCH
from resolver.identifier import parse_handle
from resolver.record import Record

router = APIRouter(prefix="/api/v1", tags=["Identifiers"])
QR_ERROR_LEVEL = "m"
QR_BORDER = 4
QR_SCALE = {"svg": 4, "png": 8}
QR_MEDIA_TYPES = {"svg": "image/svg+xml", "png": "image/png"}
Visibility = dict[str, str]


class IdentifierCreate(RequestBody):
    handle: str | None = Field(None, description="The full identifier, e.g. 88.999.1/B-001.")
    prefix: str | None = Field(None, description="Your prefix: the node picks the suffix.")
    template: str = Field(description="Template id, or <id>@<version>.", examples=["food.batch"])
    attributes: dict[str, Any] = Field(
        default_factory=dict, examples=[FOOD_BATCH["example"]], description="name -> value"
    )
    visibility: Visibility = Field(
        default_factory=dict, description="name -> 'restricted' to narrow a public item."
    )
    url: str | None = Field(None, description="Where a scan of the label redirects to.")
    idempotencyKey: str | None = Field(  # noqa: N815 - the API's JSON name
        None, description="A retry with the same key returns the first result."
    )


class IdentifierChange(RequestBody):
    attributes: dict[str, Any] = Field(
        default_factory=dict, description="name -> new value (null removes it)."
    )
    visibility: Visibility = Field(default_factory=dict)
    url: str | None = Field(None, description="New URL value; null removes it.")


@router.post("/identifiers", status_code=201, summary="Register an identifier")
async def register(
    payload: IdentifierCreate,
    response: Response,
    node: NodeDep,
    principal: CallerDep,
    session: WriteSession,
    idempotency_key: Annotated[
        str | None, Header(description="The same as idempotencyKey in the body.")
    ] = None,
) -> dict[str, Any]:
    """Register against a template; 422 ``TemplateViolation`` names every failing field and
    nothing is written. A retry with the same ``idempotencyKey`` answers 200 with the first
    result."""
    require_credentials(principal)
    registered = await service.register(
        session,
        principal=principal,
        node_prefix=node.settings.node_prefix,
        template=payload.template,
        attributes=payload.attributes,
        handle=payload.handle,
        prefix=payload.prefix,
        visibility=payload.visibility,
        url=payload.url,
        idempotency_key=payload.idempotencyKey or idempotency_key,
    )
    if registered.created:
        node.activity.registrations["api"] += 1
    else:
        response.status_code = 200
    return await service.identifier_view(session, registered.record, registered.template, principal)


@router.get(
    "/identifiers/{handle:handle}/qr.{kind}",
    summary="QR code for a label (qr.svg or qr.png)",
    responses={200: {"content": {"image/svg+xml": {}, "image/png": {}}}},
)
async def qr(
    handle: str,
    kind: Literal["svg", "png"],
    request: Request,
    node: NodeDep,
    scale: Annotated[
        int | None, Query(ge=1, le=40, description="Pixels per module (4 for SVG, 8 for PNG).")
    ] = None,
) -> Response:
    """A QR code of the node's proxy URL for the identifier: what a scan of the label opens."""
    code = await _qr(node, request, handle)
    out = io.BytesIO()
    code.save(out, kind=kind, scale=scale or QR_SCALE[kind], border=QR_BORDER)
    return Response(out.getvalue(), media_type=QR_MEDIA_TYPES[kind])


async def _qr(node: Node, request: Request, handle: str) -> segno.QRCode:
    parsed = parse_handle(handle)
    await node.resolver.lookup(parsed)  # 404 for an identifier that does not exist
    return qr_code(node, request, str(parsed))


def qr_code(node: Node, request: Request, handle: str) -> segno.QRCode:
    """The QR code a label of ``handle`` carries (its page on this node)."""
    return segno.make(proxy_url(node, request, handle), error=QR_ERROR_LEVEL, micro=False)


def proxy_url(node: Node, request: Request, handle: str) -> str:
    """The address a scan of the identifier's label opens: ``<public URL>/<handle>``."""
    base = node.settings.public_url or str(request.base_url)
    return f"{base.rstrip('/')}/{quote(handle, safe='/:@')}"


@router.patch("/identifiers/{handle:handle}", summary="Change an identifier's attributes")
async def change(
    handle: str,
    payload: IdentifierChange,
    node: NodeDep,
    principal: CallerDep,
    session: WriteSession,
) -> dict[str, Any]:
    """Change some attributes (``null`` removes one); validated again against the template
    version the identifier was registered with."""
    require_credentials(principal)
    changed = await service.change(
        session,
        handle,
        principal=principal,
        node_prefix=node.settings.node_prefix,
        attributes=payload.attributes,
        visibility=payload.visibility,
        url=payload.url if "url" in payload.model_fields_set else service.UNSET,
    )
    return await service.identifier_view(session, changed.record, changed.template, principal)


@router.get("/identifiers/{handle:handle}", summary="Show an identifier by attribute")
async def show(
    handle: str,
    node: NodeDep,
    principal: CallerDep,
    at: Annotated[
        str | None,
        Query(description="ISO 8601 time: the identifier as it was then (from its history)."),
    ] = None,
) -> dict[str, Any]:
    """Its attributes by name with their labels (restricted ones only for the owner and
    whoever it granted), its URL and its Handle values; with ``at``, as they were then."""
    parsed = parse_handle(handle)
    async with node.database.read_session() as session:
        if at is None:
            record: Record = (await node.resolver.resolve(parsed)).record()
        else:
            record = await record_then(node, session, parsed, history.parse_moment(at))
        template = await service.template_of(session, record)
        return await service.identifier_view(session, record, template, principal)


@router.get("/search", summary="Find identifiers by attribute")
async def search(
    request: Request,
    node: NodeDep,
    principal: CallerDep,
    template: Annotated[str, Query(description="Template id (required).")],
    limit: Annotated[int, Query(ge=1, le=finder.MAX_LIMIT)] = 50,
    cursor: Annotated[str | None, Query(description="nextCursor of the previous page.")] = None,
) -> dict[str, Any]:
    """``?template=vaccine.unit&attr.batchNumber=202603A``: every identifier of the template
    whose attributes equal all ``attr.<name>`` given (exact match), within what the caller may
    read. Pages of ``limit``; pass ``nextCursor`` as ``cursor`` for the next."""
    criteria = {
        key.removeprefix("attr."): value
        for key, value in request.query_params.multi_items()
        if key.startswith("attr.")
    }
    async with node.database.replica_session() as session:
        page = await finder.search(
            session, principal, template=template, criteria=criteria, limit=limit, cursor=cursor
        )
    return {"items": page.items, "nextCursor": page.next_cursor}
