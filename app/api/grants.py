"""``/api/v1/grants`` and ``/api/v1/reader-tokens``: an enterprise lets others read its
restricted values (graded resolution)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from app.api.deps import CallerDep, NodeDep, WriteSession
from app.api.schemas import Moment, RequestBody
from app.registry.access import grants as service

router = APIRouter(prefix="/api/v1", tags=["Grants and reader tokens"])


class GrantCreate(RequestBody):
    grantee: str = Field(
        min_length=1,
        max_length=64,
        description="An enterprise prefix (88.999.2) or a reader token id (rt_...).",
    )
    scope: str = Field(
        min_length=1,
        max_length=255,
        description="An identifier (88.999.1/MILK-1) or a prefix (88.999.1) of the caller.",
    )
    expiresAt: Moment | None = Field(  # noqa: N815 - the API's JSON names
        None, description="ISO 8601 with an offset; omitted: until revoked."
    )


class GrantOut(BaseModel):
    id: str
    grantee: str
    granteeKind: str  # noqa: N815
    scope: str
    createdAt: datetime  # noqa: N815
    expiresAt: datetime | None  # noqa: N815


class ReaderCreate(RequestBody):
    name: str = Field(min_length=1, max_length=200, examples=["Market regulator"])


class ReaderOut(BaseModel):
    id: str
    name: str
    createdAt: datetime  # noqa: N815


class ReaderIssued(ReaderOut):
    token: str = Field(description="Bearer token, read-only. Shown once.")


@router.post("/grants", status_code=201, response_model=GrantOut)
async def grant(
    payload: GrantCreate, principal: CallerDep, session: WriteSession
) -> dict[str, object]:
    """Let an enterprise or a reader token read the restricted values of an identifier or of
    a whole prefix of the caller, until ``expiresAt`` or until revoked."""
    created = await service.create_grant(
        session,
        principal=principal,
        grantee=payload.grantee,
        scope=payload.scope,
        expires_at=payload.expiresAt,
    )
    return service.grant_json(created)


@router.get("/grants", response_model=list[GrantOut])
async def grants(node: NodeDep, principal: CallerDep) -> list[dict[str, object]]:
    """The caller's grants that are not revoked (the operator: every enterprise's)."""
    async with node.database.read_session() as session:
        return [
            service.grant_json(g) for g in await service.grants_of(session, principal=principal)
        ]


@router.delete("/grants/{grant_id}", status_code=204)
async def revoke_grant(grant_id: str, principal: CallerDep, session: WriteSession) -> Response:
    """Revoke a grant; the next request of the grantee no longer reads what it covered."""
    await service.revoke_grant(session, principal=principal, grant_id=grant_id)
    return Response(status_code=204)


@router.post("/reader-tokens", status_code=201, response_model=ReaderIssued)
async def issue_reader(
    payload: ReaderCreate, principal: CallerDep, session: WriteSession
) -> dict[str, object]:
    """A read-only bearer token for a regulator or a customer (shown this once). It reads
    public values, and restricted ones where a grant names its id."""
    return (await service.issue_reader(session, principal=principal, name=payload.name)).as_json()


@router.get("/reader-tokens", response_model=list[ReaderOut])
async def readers(node: NodeDep, principal: CallerDep) -> list[dict[str, object]]:
    """The caller's reader tokens that are not revoked."""
    async with node.database.read_session() as session:
        return [
            service.reader_json(r) for r in await service.readers_of(session, principal=principal)
        ]


@router.delete("/reader-tokens/{reader_id}", status_code=204)
async def revoke_reader(reader_id: str, principal: CallerDep, session: WriteSession) -> Response:
    """Revoke a reader token; it stops authenticating at once."""
    await service.revoke_reader(session, principal=principal, reader_id=reader_id)
    return Response(status_code=204)
