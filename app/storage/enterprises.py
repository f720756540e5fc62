"""SQL for enterprises, their prefixes and credentials."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.storage import outbox
from app.storage.models import Credential, Enterprise, Prefix, ReaderToken


async def add_enterprise(session: AsyncSession, *, name: str, now: datetime) -> Enterprise:
    enterprise = Enterprise(name=name, status="active", created_at=now)
    session.add(enterprise)
    await session.flush()
    return enterprise


async def claim_prefix(
    session: AsyncSession, *, prefix: str, enterprise_id: int, now: datetime
) -> bool:
    """Allocate the prefix; False when it is already taken. An allocation is reported to the
    top-level node (an outbox event in this transaction)."""
    try:
        async with session.begin_nested():
            session.add(Prefix(prefix=prefix, enterprise_id=enterprise_id, created_at=now))
    except IntegrityError:
        return False
    owner = await session.get(Enterprise, enterprise_id)  # in the session already: no query
    data = {"prefix": prefix, "enterprise": owner.name if owner else None}
    await outbox.add(session, kind="prefix.allocated", data=data, at=now)
    return True


async def prefixes_under(session: AsyncSession, parent: str) -> list[str]:
    rows = await session.execute(
        select(Prefix.prefix).where(Prefix.prefix.startswith(parent + "."))
    )
    return list(rows.scalars())


async def owner_of(session: AsyncSession, prefix: str) -> Enterprise | None:
    return (
        await session.execute(
            select(Enterprise)
            .join(Prefix, Prefix.enterprise_id == Enterprise.id)
            .where(Prefix.prefix == prefix)
        )
    ).scalar_one_or_none()


async def enterprise(session: AsyncSession, enterprise_id: int) -> Enterprise | None:
    return await session.get(Enterprise, enterprise_id)


async def prefixes_of(session: AsyncSession, enterprise_id: int) -> list[str]:
    rows = await session.execute(
        select(Prefix.prefix).where(Prefix.enterprise_id == enterprise_id).order_by(Prefix.prefix)
    )
    return list(rows.scalars())


async def all_enterprises(session: AsyncSession) -> list[tuple[Enterprise, str]]:
    """Every enterprise with each of its prefixes, in allocation order."""
    rows = await session.execute(
        select(Enterprise, Prefix.prefix)
        .join(Prefix, Prefix.enterprise_id == Enterprise.id)
        .order_by(Enterprise.id, Prefix.created_at, Prefix.prefix)
    )
    return [(e, p) for e, p in rows.all()]


async def set_status(session: AsyncSession, enterprise_id: int, status: str) -> None:
    await session.execute(
        update(Enterprise).where(Enterprise.id == enterprise_id).values(status=status)
    )


async def add_credential(
    session: AsyncSession, *, enterprise_id: int | None, kind: str, secret_hash: str, now: datetime
) -> Credential:
    credential = Credential(
        enterprise_id=enterprise_id, kind=kind, secret_hash=secret_hash, created_at=now
    )
    session.add(credential)
    await session.flush()
    return credential


async def active_credential(session: AsyncSession, secret_hash: str) -> Credential | None:
    return (
        await session.execute(
            select(Credential).where(
                Credential.secret_hash == secret_hash, Credential.revoked_at.is_(None)
            )
        )
    ).scalar_one_or_none()


async def revoke(
    session: AsyncSession, *, enterprise_id: int | None, kinds: tuple[str, ...], now: datetime
) -> None:
    owner = (
        Credential.enterprise_id.is_(None)
        if enterprise_id is None
        else Credential.enterprise_id == enterprise_id
    )
    await session.execute(
        update(Credential)
        .where(owner, Credential.kind.in_(kinds), Credential.revoked_at.is_(None))
        .values(revoked_at=now)
    )


async def has_operator_credential(session: AsyncSession) -> bool:
    found = await session.execute(
        select(Credential.id).where(Credential.kind == "operator", Credential.revoked_at.is_(None))
    )
    return found.first() is not None


async def reader_of(session: AsyncSession, credential_id: int) -> str | None:
    """The id of the active reader token behind a credential."""
    return (
        await session.execute(
            select(ReaderToken.id).where(
                ReaderToken.credential_id == credential_id, ReaderToken.revoked_at.is_(None)
            )
        )
    ).scalar_one_or_none()
