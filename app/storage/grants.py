"""SQL for reader tokens and the grants that let other identities read restricted values."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.storage.models import Credential, Grant, ReaderToken


async def add_reader(
    session: AsyncSession,
    *,
    reader_id: str,
    enterprise_id: int,
    credential_id: int,
    name: str,
    now: datetime,
) -> ReaderToken:
    reader = ReaderToken(
        id=reader_id,
        enterprise_id=enterprise_id,
        credential_id=credential_id,
        name=name,
        created_at=now,
    )
    session.add(reader)
    await session.flush()
    return reader


async def reader(session: AsyncSession, reader_id: str) -> ReaderToken | None:
    return await session.get(ReaderToken, reader_id)


async def readers_of(session: AsyncSession, enterprise_id: int) -> list[ReaderToken]:
    rows = await session.execute(
        select(ReaderToken)
        .where(ReaderToken.enterprise_id == enterprise_id, ReaderToken.revoked_at.is_(None))
        .order_by(ReaderToken.created_at, ReaderToken.id)
    )
    return list(rows.scalars())


async def revoke_reader(session: AsyncSession, reader: ReaderToken, *, now: datetime) -> None:
    """The token stops authenticating at once (its credential and grants go with it)."""
    reader.revoked_at = now
    await session.execute(
        update(Credential).where(Credential.id == reader.credential_id).values(revoked_at=now)
    )
    await session.execute(
        update(Grant)
        .where(Grant.grantee_reader_id == reader.id, Grant.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    await session.flush()


async def add_grant(session: AsyncSession, grant: Grant) -> Grant:
    session.add(grant)
    await session.flush()
    return grant


async def grant(session: AsyncSession, grant_id: str) -> Grant | None:
    return await session.get(Grant, grant_id)


async def grants_by(session: AsyncSession, owner_id: int | None) -> list[Grant]:
    """Unrevoked grants an enterprise made (every enterprise's with None)."""
    query = select(Grant).where(Grant.revoked_at.is_(None))
    if owner_id is not None:
        query = query.where(Grant.owner_id == owner_id)
    rows = await session.execute(query.order_by(Grant.created_at, Grant.id))
    return list(rows.scalars())


async def has_grant(
    session: AsyncSession,
    *,
    enterprise_id: int | None,
    reader_id: str | None,
    scopes: Collection[str],
    now: datetime,
) -> bool:
    """Whether an unrevoked, unexpired grant to this enterprise or reader covers a scope."""
    grantee = (
        Grant.grantee_enterprise_id == enterprise_id
        if enterprise_id is not None
        else Grant.grantee_reader_id == reader_id
    )
    found = await session.execute(
        select(Grant.id)
        .where(
            grantee,
            Grant.scope.in_(scopes),
            Grant.revoked_at.is_(None),
            or_(Grant.expires_at.is_(None), Grant.expires_at > now.astimezone(UTC)),
        )
        .limit(1)
    )
    return found.first() is not None
