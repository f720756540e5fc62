"""The proxy: what a scanned QR code hits. ``GET /{handle}`` redirects to the identifier's
``URL`` value, or shows a page of its public values."""

from __future__ import annotations

from datetime import timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from app.api.deps import NodeDep
from app.api.handles import record_then
from app.errors import InvalidRequest
from app.node import Node
from app.registry import clock, history, identifiers
from resolver.errors import HandleNotFound, InvalidHandle, NotResponsible
from resolver.identifier import parse_handle
from resolver.record import Record
from resolver.upstream import UpstreamFailed, UpstreamUnavailable
from resolver.values import HandleValue

router = APIRouter(tags=["Proxy"])
LINK_SCHEMES = frozenset({"http", "https"})


def _page(node: Node, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = node.pages.get_template(template).render(
        node_prefix=node.settings.node_prefix, **context
    )
    return HTMLResponse(html, status)


def _message(node: Node, status: int, title: str, message: str, handle: str) -> HTMLResponse:
    return _page(node, "message.html", status, title=title, message=message, handle=handle)


@router.get("/", response_class=HTMLResponse, summary="Resolve form")
async def index(node: NodeDep, hdl: str | None = None) -> Response:
    """A form to resolve an identifier; ``?hdl=<identifier>`` goes straight to it."""
    if hdl:
        try:
            # Only a valid identifier (never '//host') may become the redirect target.
            parsed = parse_handle(hdl.strip())
        except InvalidHandle as exc:
            return _message(node, 400, "Not a valid identifier", exc.message, hdl)
        return RedirectResponse("/" + quote(str(parsed), safe="/:@"), 302)
    return _page(node, "index.html")


@router.get(
    "/{handle:handle}",
    summary="Redirect to an identifier's URL, or show its public values",
    responses={302: {"description": "Location: the first URL value"}},
)
async def proxy(handle: str, request: Request, node: NodeDep, at: str | None = None) -> Response:
    """302 to the first ``URL`` value (``Expires`` from the smallest TTL); ``?noredirect``, or
    no URL value, gives an HTML page of the public values. ``?at=<ISO 8601 time>`` shows the
    page of the public values as they were then (identifiers this node holds), never a
    redirect."""
    try:
        parsed = parse_handle(handle)
        if at is None:
            record = (await node.resolver.resolve(parsed)).record().public()
        else:
            moment = history.parse_moment(at)
            async with node.database.read_session() as session:
                record = (await record_then(node, session, parsed, moment)).public()
    except InvalidHandle as exc:
        return _message(node, 400, "Not a valid identifier", exc.message, handle)
    except InvalidRequest as exc:
        return _message(node, 400, "Not a valid time", exc.message, handle)
    except (UpstreamUnavailable, UpstreamFailed) as exc:
        return _message(node, 502, "Could not resolve", exc.message, handle)
    except (HandleNotFound, NotResponsible) as exc:
        missing = f"{handle} is not registered." if at is None else exc.message
        return _message(node, 404, "Identifier not found", missing, handle)
    target = record.first("URL")
    if (
        at is not None
        or target is None
        or "noredirect" in request.query_params
        or not _linkable(target.value)
    ):
        async with node.database.read_session() as session:
            template = await identifiers.template_of(session, record)
        return _page(
            node,
            "record.html",
            handle=record.handle,
            values=_rows(record),
            kind=template,
            attributes=identifiers.labelled_rows(record, template) if template else [],
            as_of=None if at is None else clock.handle_timestamp(moment),
        )
    ttl = record.min_ttl() or 0
    expires = format_datetime(clock.now() + timedelta(seconds=ttl), usegmt=True)
    return RedirectResponse(str(target.value), 302, headers={"Expires": expires})


def _rows(record: Record) -> list[dict[str, Any]]:
    return [
        {
            "index": v.index,
            "type": v.type,
            "text": _text(v),
            "link": v.value if v.format == "string" and _linkable(v.value) else None,
            "timestamp": v.timestamp,
        }
        for v in record.values
    ]


def _text(v: HandleValue) -> str:
    if v.format == "admin":
        return f"{v.value['index']}:{v.value['handle']}"
    return v.value if isinstance(v.value, str) else str(v.value)


def _linkable(text: object) -> bool:
    """Only http(s) addresses become links or redirects (never ``javascript:`` and the like)."""
    return isinstance(text, str) and urlsplit(text).scheme.lower() in LINK_SCHEMES
