"""HTTP ingest of NB-IoT platform pushes (mounted by the composition root).

``GET/POST /api/v1/ingest/onenet/{prefix}`` and ``POST /api/v1/ingest/ctwing/{prefix}``:
the signature (OneNET) or token (CTWing ``?token=``) is checked, the push is kept in the
database's ingest queue, and the answer is 200 once that is committed (milliseconds); a bad
signature is 403 (429 once an address or account has failed too often, ``app.throttle``), a
full queue 503 with ``Retry-After`` (the platform retries).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from contextlib import contextmanager

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse

from app.errors import IngestQueueFull, InvalidRequest, PermissionDenied, RequestTooLarge
from app.registry.devices import PlatformAccount
from app.state import state_of
from gateways.nbiot import ctwing, onenet
from gateways.nbiot.events import PlatformEvent
from gateways.nbiot.ingest import IngestQueue

router = APIRouter(
    prefix="/api/v1/ingest",
    tags=["Device ingest"],
    responses={
        403: {"description": "No account for the platform, or a wrong signature or token"},
        429: {"description": "Too many wrong signatures or tokens; see Retry-After"},
    },
)
MAX_BODY = 64 * 1024
OK = {"result": "ok"}


def _queue(request: Request) -> IngestQueue:
    return state_of(request.scope)["nbiot"]


async def _account(request: Request, prefix: str, platform: str) -> PlatformAccount:
    account = await _queue(request).devices.platform_account(prefix, platform)
    if account is None:
        raise PermissionDenied(
            f"prefix {prefix} has no {platform} account configured (or its key is revoked)"
        )
    return account


@contextmanager
def _throttled(request: Request, platform: str, prefix: str) -> Iterator[None]:
    """A wrong signature or token is a failed authentication (throttled per client address
    and per platform account, ``app.throttle``)."""
    limiter = state_of(request.scope)["node"].attempts
    address = request.client.host if request.client else None
    credential = f"{prefix}/{platform}"
    limiter.check(platform, address=address, credential=credential)
    try:
        yield
    except PermissionDenied as exc:
        limiter.failed(platform, address=address, credential=credential, reason=exc.message)
        raise


async def _body(request: Request) -> bytes:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise RequestTooLarge(f"push body exceeds {MAX_BODY} bytes")
    return bytes(body)


async def _queued(
    request: Request, account: PlatformAccount, event: PlatformEvent | None
) -> Response:
    if event is not None and not await _queue(request).offer(account.prefix, event):
        raise IngestQueueFull("ingest queue full; retry")
    return Response(orjson.dumps(OK), 200, media_type="application/json")


@router.get("/onenet/{prefix}", response_class=PlainTextResponse)
async def onenet_verification(
    prefix: str, request: Request, msg: str, nonce: str, signature: str
) -> PlainTextResponse:
    """OneNET's URL check: answers ``msg`` when the signature matches the enterprise's token."""
    with _throttled(request, "onenet", prefix):
        account = await _account(request, prefix, "onenet")
        assert account.token is not None
        answer = onenet.verify_url(account.token, msg=msg, nonce=nonce, sent=signature)
    return PlainTextResponse(answer)


@router.post("/onenet/{prefix}")
async def onenet_push(prefix: str, request: Request) -> Response:
    """A OneNET data (type 1) or online/offline (type 2) push, signed with the token."""
    with _throttled(request, "onenet", prefix):
        account = await _account(request, prefix, "onenet")
        assert account.token is not None
        event = onenet.parse_push(await _body(request), account.token)
    return await _queued(request, account, event)


@router.post("/ctwing/{prefix}")
async def ctwing_push(prefix: str, request: Request, token: str | None = None) -> Response:
    """A CTWing subscription push (``dataReport``, online/offline report)."""
    with _throttled(request, "ctwing", prefix):
        account = await _account(request, prefix, "ctwing")
        if account.token is not None and not hmac.compare_digest(account.token, token or ""):
            raise PermissionDenied("CTWing push: the token in the URL does not match")
    try:
        body = orjson.loads(await _body(request))
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"CTWing push is not JSON: {exc}") from exc
    return await _queued(request, account, ctwing.parse_push(body))
