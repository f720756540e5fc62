"""The SNMS HTTP paths: login, identifiers, templates and prefixes, every answer in the
``{"status", "message", "data"}`` envelope (see ``app/snms/envelope.py``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.deps import NodeDep, WriteSession, current_node, json_body, read_body
from app.auth import ANONYMOUS, Principal
from app.errors import InvalidRequest
from app.snms import accounts, identifiers, prefixes, templates
from app.snms.envelope import SnmsRoute, answer
from app.vault import Vault
from resolver.identifier import parse_handle

router = APIRouter(route_class=SnmsRoute, tags=["SNMS compatible"])
Body = Annotated[Any, Depends(json_body)]
TEMPLATE_PATHS = {  # path -> whether creating requires the industry fields (v3, v5)
    "/snms/api/v5/template": True,
    "/snms/api/v3/template": True,
    "/snms/api/template/v1": False,  # older; clients send no industry fields
}


async def snms_caller(request: Request, node: NodeDep) -> Principal:
    header = request.headers.get("authorization")
    if not header:
        return ANONYMOUS
    async with node.database.read_session() as session:
        return await accounts.caller(session, header, operator_token=node.operator_token)


Caller = Annotated[Principal, Depends(snms_caller)]


async def batch_body(request: Request, node: NodeDep) -> Any:
    """A batch body: up to the node's batch size limit, not the single-request one."""
    body = await read_body(request, node.settings.batch_max_bytes)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"the request body is not valid JSON: {exc}") from exc


BatchBody = Annotated[Any, Depends(batch_body)]


# --- login ---


async def _login(request: Request, session: AsyncSession, body: Any, *, hashed: bool) -> Response:
    username = body.get("username") if isinstance(body, dict) else None
    password = body.get("password") if isinstance(body, dict) else None
    if not isinstance(username, str) or not isinstance(password, str):
        raise InvalidRequest("缺少必要的请求参数: username, password")
    client = request.client.host if request.client else None
    node = current_node(request)
    vault = Vault(node.settings.node_key_file)
    async with accounts.login_guard(node.attempts, username, client):
        token = await accounts.login(session, username, password, hashed=hashed, vault=vault)
    return answer({"token": token})


@router.post("/identity/token", summary="Log in (password in plain text)")
async def login(request: Request, body: Body, session: WriteSession) -> Response:
    """``{"username", "password"}`` -> ``data.token``, valid for 24 hours."""
    return await _login(request, session, body, hashed=False)


@router.post("/identity/token/v1", summary="Log in (password hashed with the date)")
async def login_hashed(request: Request, body: Body, session: WriteSession) -> Response:
    """``password`` = sha256hex(sha256hex(password) + the date in China, yyyy-MM-dd)."""
    return await _login(request, session, body, hashed=True)


# --- identifiers ---


@router.get("/identityv2/data/detail", summary="Show an identifier")
async def detail(
    node: NodeDep, principal: Caller, handle: Annotated[str | None, Query()] = None
) -> Response:
    if not handle:
        raise InvalidRequest("缺少必要的请求参数: handle")
    record = (await node.resolver.resolve(parse_handle(handle))).record()
    async with node.database.read_session() as session:
        return answer(await identifiers.detail(session, principal, record))


@router.post("/identityv2/data", summary="Register an identifier")
async def create(node: NodeDep, principal: Caller, body: Body, session: WriteSession) -> Response:
    """Create-only: a second create answers -2 "标识已存在" and changes nothing."""
    await identifiers.create(session, principal, body, node_prefix=node.settings.node_prefix)
    node.activity.registrations["snms"] += 1
    return answer(True)


@router.put("/identityv2/data", summary="Replace an identifier's values")
async def update(node: NodeDep, principal: Caller, body: Body, session: WriteSession) -> Response:
    await identifiers.update(session, principal, body, node_prefix=node.settings.node_prefix)
    return answer(True)


@router.delete("/identityv2/data", summary="Delete an identifier")
async def delete(node: NodeDep, principal: Caller, body: Body, session: WriteSession) -> Response:
    handle = body.get("handle") if isinstance(body, dict) else None
    await identifiers.delete(session, principal, handle, node_prefix=node.settings.node_prefix)
    return answer(True)


@router.post("/identityv2/data/batchCreate", summary="Register up to 2,000 identifiers")
async def batch_create(
    node: NodeDep, principal: Caller, body: BatchBody, session: WriteSession
) -> Response:
    answers, created = await identifiers.batch_create(
        session, principal, body, node_prefix=node.settings.node_prefix
    )
    node.activity.registrations["snms"] += created
    return answer(answers)


@router.put("/identityv2/data/batchUpdate", summary="Replace up to 2,000 identifiers' values")
async def batch_update(
    node: NodeDep, principal: Caller, body: BatchBody, session: WriteSession
) -> Response:
    node_prefix = node.settings.node_prefix

    async def one(raw: Any) -> None:
        await identifiers.update(session, principal, raw, node_prefix=node_prefix)

    sent = identifiers.batch_of(body)
    return answer(await identifiers.each(session, sent, one))


@router.delete("/identityv2/data/batchDelete", summary="Delete up to 2,000 identifiers")
async def batch_delete(
    node: NodeDep, principal: Caller, body: BatchBody, session: WriteSession
) -> Response:
    """The body is a JSON array of handles (``{"handles": [...]}`` is accepted too)."""
    node_prefix = node.settings.node_prefix

    async def one(handle: Any) -> None:
        await identifiers.delete(session, principal, handle, node_prefix=node_prefix)

    sent = identifiers.batch_of(body)
    return answer(await identifiers.each(session, sent, one))


# --- templates (v5, v3 and the older v1 path) ---


async def show_template(
    node: NodeDep,
    principal: Caller,
    prefix: Annotated[str | None, Query(max_length=64)] = None,
    version: Annotated[str | None, Query(max_length=128)] = None,
) -> Response:
    if not prefix or not version:
        raise InvalidRequest("缺少必要的请求参数: prefix, version")
    async with node.database.read_session() as session:
        shown = await templates.show(
            session, principal, prefix, version, node_prefix=node.settings.node_prefix
        )
    return answer(shown)


def _creator(strict: bool) -> Callable[..., Awaitable[Response]]:
    """The create endpoint of one template path (v3 and v5 require the industry fields)."""

    async def create_template(
        node: NodeDep, principal: Caller, body: Body, session: WriteSession
    ) -> Response:
        await templates.create(
            session, principal, body, node_prefix=node.settings.node_prefix, strict=strict
        )
        return answer(True)

    return create_template


async def edit_template(
    node: NodeDep, principal: Caller, body: Body, session: WriteSession
) -> Response:
    """Incremental: items sent with a known idIndex change, others are added; ``state`` 0
    disables an item (items are never deleted)."""
    await templates.edit(session, principal, body, node_prefix=node.settings.node_prefix)
    return answer(True)


async def delete_template(principal: Caller, body: Body, session: WriteSession) -> Response:
    await templates.delete(session, principal, body)
    return answer(True)


for _path, _strict in TEMPLATE_PATHS.items():
    router.add_api_route(_path, show_template, methods=["GET"], summary="Show a template")
    router.add_api_route(_path, _creator(_strict), methods=["POST"], summary="Add a template")
    router.add_api_route(_path, delete_template, methods=["DELETE"], summary="Forget a template")
router.add_api_route(
    "/snms/api/v5/template", edit_template, methods=["PUT"], summary="Edit a template"
)


# --- prefixes ---


@router.get("/snms/api/prefix/query", summary="Show one of your prefixes")
async def prefix_query(
    node: NodeDep, principal: Caller, prefix: Annotated[str | None, Query()] = None
) -> Response:
    if not prefix:
        raise InvalidRequest("缺少必要的请求参数: prefix")
    async with node.database.read_session() as session:
        shown = await prefixes.prefix_view(
            session, principal, prefix, registrar=node.settings.upstream_url or ""
        )
    return answer(shown)
