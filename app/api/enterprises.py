"""``/api/v1/enterprises``: the operator allocates prefixes and issues credentials."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, Field

from app.api.deps import CallerDep, NodeDep, WriteSession, operator, owner_or_operator
from app.api.schemas import RequestBody
from app.auth import Principal
from app.registry.access import enterprises as service
from app.registry.access import public_keys

router = APIRouter(prefix="/api/v1/enterprises", tags=["Enterprises"])
OperatorDep = Annotated[Principal, Depends(operator)]


class EnterpriseCreate(RequestBody):
    name: str = Field(min_length=1, max_length=200, examples=["Inner Mongolia Dairy Co."])
    prefix: str | None = Field(
        None,
        description="Explicit enterprise segment (e.g. '0042' for 88.999.0042); "
        "omitted: the next free number.",
    )


class EnterpriseChange(RequestBody):
    status: Literal["active", "disabled"]


class Enterprise(BaseModel):
    name: str
    prefix: str
    prefixes: list[str]
    adminHandle: str  # noqa: N815 - the API's JSON names
    status: str
    createdAt: datetime  # noqa: N815


class EnterpriseCredentials(Enterprise):
    secret: str = Field(description="For Handle clients: Basic 300:<prefix>/ADMIN. Shown once.")
    token: str = Field(description="Bearer token for the node's APIs. Shown once.")


@router.post("", status_code=201, response_model=EnterpriseCredentials)
async def create(
    payload: EnterpriseCreate, node: NodeDep, session: WriteSession, _: OperatorDep
) -> dict[str, object]:
    """Allocate an enterprise prefix and issue its credentials (shown this once)."""
    issued = await service.create_enterprise(
        session, name=payload.name, segment=payload.prefix, node_prefix=node.settings.node_prefix
    )
    return issued.as_json()


@router.get("", response_model=list[Enterprise])
async def list_all(node: NodeDep, _: OperatorDep) -> list[dict[str, object]]:
    """Every enterprise with its prefixes."""
    async with node.database.read_session() as session:
        return [e.as_json() for e in await service.list_enterprises(session)]


@router.get("/{prefix}", response_model=Enterprise)
async def show(prefix: str, node: NodeDep, principal: CallerDep) -> dict[str, object]:
    """One enterprise (the operator, or the enterprise itself)."""
    owner_or_operator(principal, prefix)
    async with node.database.read_session() as session:
        return (await service.enterprise_view(session, prefix)).as_json()


@router.patch("/{prefix}", response_model=Enterprise)
async def change(
    prefix: str, payload: EnterpriseChange, session: WriteSession, _: OperatorDep
) -> dict[str, object]:
    """Disable an enterprise (its writes are refused, its identifiers still resolve) or
    re-enable it."""
    return (await service.change_status(session, prefix, status=payload.status)).as_json()


@router.post("/{prefix}/credentials", response_model=EnterpriseCredentials)
async def rotate(prefix: str, principal: CallerDep, session: WriteSession) -> dict[str, object]:
    """Revoke the enterprise's secret and token and issue new ones (shown this once)."""
    owner_or_operator(principal, prefix)
    return (await service.rotate_credentials(session, prefix)).as_json()


class PublicKeyIn(BaseModel):
    publicKey: str = Field(  # noqa: N815
        description="PEM SubjectPublicKeyInfo (-----BEGIN PUBLIC KEY-----); RSA, DSA or EC."
    )


class PublicKeyOut(BaseModel):
    index: int = Field(description="Index of the HS_PUBKEY value on <prefix>/ADMIN.")
    publicKey: str  # noqa: N815
    algorithm: str


@router.post("/{prefix}/public-keys", status_code=201, response_model=PublicKeyOut)
async def add_public_key(
    prefix: str, payload: PublicKeyIn, principal: CallerDep, session: WriteSession
) -> dict[str, object]:
    """Publish a public key as ``HS_PUBKEY`` on ``<prefix>/ADMIN`` (first 301, then 302, ...):
    Handle protocol clients then log in as ``<prefix>/ADMIN`` at that index with the
    matching private key (opcode 2001)."""
    owner_or_operator(principal, prefix)
    added = await public_keys.add_key(session, prefix, payload.publicKey, actor=principal.actor)
    return added.as_json()


@router.get("/{prefix}/public-keys", response_model=list[PublicKeyOut])
async def list_public_keys(
    prefix: str, node: NodeDep, principal: CallerDep
) -> list[dict[str, object]]:
    """The enterprise's published keys."""
    owner_or_operator(principal, prefix)
    async with node.database.read_session() as session:
        return [k.as_json() for k in await public_keys.list_keys(session, prefix)]


@router.delete("/{prefix}/public-keys/{index}", status_code=204)
async def revoke_public_key(
    prefix: str, index: int, principal: CallerDep, session: WriteSession
) -> Response:
    """Revoke a key: it can no longer log in."""
    owner_or_operator(principal, prefix)
    await public_keys.revoke_key(session, prefix, index, actor=principal.actor)
    return Response(status_code=204)
