"""The proxy: what a scanned QR code hits. ``GET /{handle}`` redirects to the identifier's
``URL`` value, or shows its public page (``app/registry/identifiers/public_page.py``)."""

from __future__ import annotations

from datetime import timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from markupsafe import Markup

from app.api.deps import NodeDep
from app.api.handles import record_then
from app.api.identifiers import qr_code
from app.api.pages import render
from app.errors import InvalidRequest, ServiceUnavailable
from app.node import Node
from app.registry import clock
from app.registry.identifiers import history
from app.registry.identifiers.public_page import public_page
from resolver.errors import HandleNotFound, InvalidHandle, NotResponsible
from resolver.identifier import parse_handle
from resolver.record import Record
from resolver.upstream import UpstreamFailed, UpstreamUnavailable
from resolver.values import HandleValue

router = APIRouter(tags=["Proxy"])
LINK_SCHEMES = frozenset({"http", "https"})


def _message(
    node: Node, request: Request, status: int, kind: str, handle: str, detail: str | None = None
) -> HTMLResponse:
    """A page saying what went wrong and what to do next, in the request's language."""
    return render(node, request, "message.html", status, kind=kind, handle=handle, detail=detail)


@router.get("/", response_class=HTMLResponse, summary="Resolve form")
async def index(request: Request, node: NodeDep, hdl: str | None = None) -> Response:
    """A form to resolve an identifier; ``?hdl=<identifier>`` goes straight to it."""
    if hdl:
        try:
            # Only a valid identifier (never '//host') may become the redirect target.
            parsed = parse_handle(hdl.strip())
        except InvalidHandle as exc:
            return _message(node, request, 400, "invalid", hdl, exc.message)
        lang = request.query_params.get("lang")
        query = f"?lang={quote(lang)}" if lang else ""
        return RedirectResponse("/" + quote(str(parsed), safe="/:@") + query, 302)
    return render(node, request, "index.html")


@router.get(
    "/{handle:handle}",
    response_class=HTMLResponse,
    summary="Redirect to an identifier's URL, or show its public page",
    responses={302: {"description": "Location: the first URL value"}},
)
async def proxy(handle: str, request: Request, node: NodeDep, at: str | None = None) -> Response:
    """302 to the first ``URL`` value (``Expires`` from the smallest TTL); ``?noredirect``, or
    no URL value, gives the identifier's public page, in the language ``Accept-Language`` or
    ``?lang=`` asks for. ``?at=<ISO 8601 time>`` shows the page of the public values as they
    were then (identifiers this node holds), never a redirect. Each page or redirect of an
    identifier as it is now counts as one scan."""
    try:
        parsed = parse_handle(handle)
        if at is None:
            record = (await node.resolver.resolve(parsed)).record().public()
        else:
            moment = history.parse_moment(at)
            async with node.database.read_session() as session:
                record = (await record_then(node, session, parsed, moment)).public()
    except InvalidHandle as exc:
        return _message(node, request, 400, "invalid", handle, exc.message)
    except InvalidRequest as exc:
        return _message(node, request, 400, "bad_time", handle, exc.message)
    except (UpstreamUnavailable, UpstreamFailed) as exc:
        return _message(node, request, 502, "upstream", handle, exc.message)
    except ServiceUnavailable as exc:
        busy = _message(node, request, exc.status, "busy", handle, exc.message)
        busy.headers["Retry-After"] = str(exc.retry_after)
        return busy
    except (HandleNotFound, NotResponsible) as exc:
        return _message(
            node, request, 404, "not_found", handle, None if at is None else exc.message
        )
    if at is None and node.settings.scans:
        node.scans.add(record.handle)
    target = record.first("URL")
    if (
        at is not None
        or target is None
        or "noredirect" in request.query_params
        or not _linkable(target.value)
    ):
        async with node.database.read_session() as session:
            page = await public_page(session, record, local=node.resolver.is_local(parsed))
        return render(
            node,
            request,
            "record.html",
            handle=record.handle,
            page=page,
            values=_rows(record),
            qr=_qr_svg(node, request, record.handle),
            as_of=None if at is None else clock.handle_timestamp(moment),
        )
    ttl = record.min_ttl() or 0
    expires = format_datetime(clock.now() + timedelta(seconds=ttl), usegmt=True)
    return RedirectResponse(str(target.value), 302, headers={"Expires": expires})


def _qr_svg(node: Node, request: Request, handle: str) -> Markup:
    # segno's inline SVG is only paths: no text from the record reaches the markup.
    svg = qr_code(node, request, handle).svg_inline(scale=4, border=2)
    return Markup(svg)  # noqa: S704


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
