"""SQL for the SNMS facade: its users, their login tokens and its template names."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.storage.models import Credential, Prefix, SnmsSession, SnmsTemplate, SnmsUser


async def add_user(
    session: AsyncSession,
    *,
    enterprise_id: int,
    username: str,
    password_hash: str,
    password_sha256: str,
    now: datetime,
) -> SnmsUser | None:
    """The new user; None when the username is taken (by any enterprise)."""
    user = SnmsUser(
        enterprise_id=enterprise_id,
        username=username,
        password_hash=password_hash,
        password_sha256=password_sha256,
        created_at=now,
    )
    try:
        async with session.begin_nested():
            session.add(user)
    except IntegrityError:
        return None
    return user


async def user(session: AsyncSession, username: str) -> SnmsUser | None:
    return (
        await session.execute(select(SnmsUser).where(SnmsUser.username == username))
    ).scalar_one_or_none()


async def users_of(session: AsyncSession, enterprise_id: int) -> list[SnmsUser]:
    rows = await session.execute(
        select(SnmsUser).where(SnmsUser.enterprise_id == enterprise_id).order_by(SnmsUser.id)
    )
    return list(rows.scalars())


async def set_disabled(session: AsyncSession, user_id: int, when: datetime | None) -> None:
    await session.execute(update(SnmsUser).where(SnmsUser.id == user_id).values(disabled_at=when))


async def remove_user(session: AsyncSession, user_id: int) -> None:
    await end_sessions(session, user_id)
    await session.execute(delete(SnmsUser).where(SnmsUser.id == user_id))


async def end_sessions(session: AsyncSession, user_id: int) -> None:
    await session.execute(delete(SnmsSession).where(SnmsSession.user_id == user_id))


async def add_session(
    session: AsyncSession,
    *,
    token_hash: str,
    enterprise_id: int,
    user_id: int | None,
    expires_at: datetime,
    now: datetime,
) -> None:
    """Store a new token, dropping the tokens of the same login that have expired."""
    same_login = (
        SnmsSession.user_id == user_id
        if user_id is not None
        else (SnmsSession.user_id.is_(None) & (SnmsSession.enterprise_id == enterprise_id))
    )
    await session.execute(delete(SnmsSession).where(same_login, SnmsSession.expires_at <= now))
    session.add(
        SnmsSession(
            token_hash=token_hash,
            enterprise_id=enterprise_id,
            user_id=user_id,
            expires_at=expires_at,
        )
    )
    await session.flush()


async def live_session(session: AsyncSession, token_hash: str, now: datetime) -> int | None:
    """The enterprise behind an unexpired token of an enabled user (or an ADMIN login)."""
    row = (
        await session.execute(
            select(SnmsSession.enterprise_id)
            .outerjoin(SnmsUser, SnmsUser.id == SnmsSession.user_id)
            .where(
                SnmsSession.token_hash == token_hash,
                SnmsSession.expires_at > now,
                SnmsUser.disabled_at.is_(None),
            )
        )
    ).first()
    return None if row is None else int(row[0])


async def secret_hashes(session: AsyncSession, enterprise_id: int) -> list[str]:
    """The SHA-256 digests of the enterprise's active Handle secrets."""
    rows = await session.execute(
        select(Credential.secret_hash).where(
            Credential.enterprise_id == enterprise_id,
            Credential.kind == "secret",
            Credential.revoked_at.is_(None),
        )
    )
    return list(rows.scalars())


async def prefix_row(session: AsyncSession, prefix: str) -> Prefix | None:
    return await session.get(Prefix, prefix)


async def template_name(session: AsyncSession, prefix: str, version: str) -> SnmsTemplate | None:
    return (
        await session.execute(
            select(SnmsTemplate).where(
                SnmsTemplate.prefix == prefix, SnmsTemplate.version == version
            )
        )
    ).scalar_one_or_none()


async def template_names_of(session: AsyncSession, template_ids: list[str]) -> dict[str, str]:
    """template id -> the SNMS version it is named by."""
    if not template_ids:
        return {}
    rows = await session.execute(
        select(SnmsTemplate.template_id, SnmsTemplate.version).where(
            SnmsTemplate.template_id.in_(template_ids)
        )
    )
    return {template_id: version for template_id, version in rows.all()}


async def add_template_name(
    session: AsyncSession,
    *,
    prefix: str,
    version: str,
    template_id: str,
    details: dict[str, Any],
    now: datetime,
) -> bool:
    """False when ``(prefix, version)`` names a template already."""
    try:
        async with session.begin_nested():
            session.add(
                SnmsTemplate(
                    prefix=prefix,
                    version=version,
                    template_id=template_id,
                    details=details,
                    created_at=now,
                )
            )
    except IntegrityError:
        return False
    return True


async def change_template_details(
    session: AsyncSession, name_id: int, details: dict[str, Any]
) -> None:
    await session.execute(
        update(SnmsTemplate).where(SnmsTemplate.id == name_id).values(details=details)
    )


async def remove_template_name(session: AsyncSession, name_id: int) -> None:
    await session.execute(delete(SnmsTemplate).where(SnmsTemplate.id == name_id))
