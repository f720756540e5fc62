"""The operator dashboard: ``GET /dashboard`` (a login form until the operator logs in with
the operator token), and ``GET /dashboard/stream``, the live figures as Server-Sent Events.

The token is typed into a form and checked like the operator's bearer token; from then on a
signed session cookie (HttpOnly, SameSite=Strict, Secure over https) stands for it, so the
token never appears in the page or a URL.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any
from urllib.parse import parse_qs

import orjson
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse, StreamingResponse

from app.api.deps import NodeDep, read_body
from app.api.monitoring import broker_state
from app.api.pages import render
from app.auth import authenticate
from app.dashboard import Dashboard
from app.dashboard.sampler import Listener
from app.dashboard.sessions import COOKIE
from app.dashboard.snapshot import chart_point
from app.errors import AuthenticationFailed, RequestTooLarge, TooManyAttempts
from app.node import Node
from app.state import state_of
from app.throttle import token_credential

router = APIRouter(tags=["Dashboard"], include_in_schema=False)

# Everything the page loads comes from the node itself; uPlot styles its elements through
# the DOM (allowed), never with inline <style> or style="" (which this forbids).
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
# A stream ends after this long and the page reconnects at once (EventSource does), sending
# the id of the last snapshot it got, and receives only what it missed. The servers let
# running responses finish before they stop, so this bounds how long a node shutting down
# waits for open dashboards; each reconnection also checks the session again.
STREAM_SECONDS = 5.0
RECONNECT_MS = 250
LOGIN_BODY_LIMIT = 4096


def current_dashboard(request: Request) -> Dashboard:
    return state_of(request.scope)["dashboard"]


DashboardDep = Annotated[Dashboard, Depends(current_dashboard)]


def _logged_in(request: Request, dashboard: Dashboard) -> bool:
    return dashboard.sessions.valid(request.cookies.get(COOKIE))


def _page(
    node: Node, request: Request, template: str, status: int = 200, **context: Any
) -> HTMLResponse:
    return render(node, request, template, status, headers=SECURITY_HEADERS, **context)


@router.get("/dashboard", response_class=HTMLResponse)
async def page(request: Request, node: NodeDep, dashboard: DashboardDep) -> Response:
    """The dashboard, or the login form when there is no valid session."""
    if not _logged_in(request, dashboard):
        return _page(node, request, "dashboard_login.html")
    settings = node.settings
    return _page(
        node,
        request,
        "dashboard.html",
        upstream=settings.upstream_url is not None,
        counting=settings.metrics,
        broker=broker_state(request, settings)[0],
    )


@router.post("/dashboard/login", response_class=HTMLResponse)
async def login(request: Request, node: NodeDep, dashboard: DashboardDep) -> Response:
    """Check the operator token from the form; on success set the session cookie."""
    try:
        form = parse_qs((await read_body(request, LOGIN_BODY_LIMIT)).decode("utf-8", "replace"))
    except RequestTooLarge:
        return _page(node, request, "dashboard_login.html", 413, error="wrong")
    token = (form.get("token") or [""])[0].strip()
    if not token:
        return _page(node, request, "dashboard_login.html", 401, error="empty")
    address = request.client.host if request.client else None
    credential = token_credential(token)  # never the token itself
    try:
        node.attempts.check("dashboard", address=address, credential=credential)
    except TooManyAttempts as exc:
        refused = _page(node, request, "dashboard_login.html", 429, error="throttled")
        refused.headers["Retry-After"] = str(exc.retry_after)
        return refused
    try:
        async with node.database.read_session() as session:
            principal = await authenticate(
                session, f"Bearer {token}", operator_token=node.operator_token
            )
    except AuthenticationFailed:
        principal = None
    if principal is None or not principal.is_operator:
        node.attempts.failed(
            "dashboard", address=address, credential=credential, reason="not the operator token"
        )
        return _page(node, request, "dashboard_login.html", 401, error="wrong")
    redirect = RedirectResponse("/dashboard", 303)
    redirect.set_cookie(
        COOKIE,
        dashboard.sessions.issue(),
        max_age=dashboard.sessions.ttl,
        path="/dashboard",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    return redirect


@router.post("/dashboard/logout")
async def logout(request: Request) -> Response:
    """End the session in this browser, back to the login form."""
    redirect = RedirectResponse("/dashboard", 303)
    redirect.delete_cookie(COOKIE, path="/dashboard", secure=_secure(request))
    return redirect


def _secure(request: Request) -> bool:
    """Whether the browser reached the node over https (itself or through a proxy).

    Over plain http (a laptop on loopback) a Secure cookie would never come back. The
    forwarded header needs no trust: it can only make the cookie stricter.
    """
    node = state_of(request.scope)["node"]
    return (
        request.url.scheme == "https"
        or request.headers.get("x-forwarded-proto", "").lower() == "https"
        or (node.settings.public_url or "").lower().startswith("https://")
    )


@router.get("/dashboard/stream")
async def stream(request: Request, dashboard: DashboardDep) -> Response:
    """Server-Sent Events: ``history`` (the charts so far) first, then one snapshot a second."""
    if not _logged_in(request, dashboard):
        # No WWW-Authenticate: the page handles this by showing the login form.
        return Response(
            orjson.dumps(
                {"error": "AuthenticationRequired", "detail": "log in at /dashboard first"}
            ),
            401,
            media_type="application/json",
        )
    return StreamingResponse(
        _events(dashboard, _last_seen(request.headers.get("last-event-id"))),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _last_seen(header: str | None) -> float | None:
    try:
        return float(header) if header else None
    except ValueError:
        return None


async def _events(dashboard: Dashboard, last_seen: float | None) -> AsyncIterator[bytes]:
    sampler = dashboard.sampler
    loop = asyncio.get_running_loop()
    ends = loop.time() + STREAM_SECONDS
    async with sampler.listen() as listener:
        yield f"retry: {RECONNECT_MS}\n\n".encode()
        missed = [f for f in listener.history if last_seen is None or f["t"] > last_seen]
        # "full": the page starts its charts over (first visit, or after the node restarted)
        full = last_seen is None or not listener.history or listener.history[0]["t"] > last_seen
        yield _event("history", {"full": full, "points": [chart_point(f) for f in missed]})
        if listener.history:
            yield _snapshot(listener.history[-1], dashboard)
        while loop.time() < ends:
            figures = await _next(listener, patience=sampler.interval * 5)
            if figures is None:  # the sampler stopped; the page reconnects and restarts it
                return
            yield _snapshot(figures, dashboard)


async def _next(listener: Listener, *, patience: float) -> dict[str, Any] | None:
    try:
        async with asyncio.timeout(patience):
            return await listener.next()
    except TimeoutError:
        return None


def _snapshot(figures: dict[str, Any], dashboard: Dashboard) -> bytes:
    data = {**figures, "recent_errors": dashboard.errors.entries()}
    return b"id: %r\n" % figures["t"] + _event("snapshot", data)


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
