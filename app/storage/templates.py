"""SQL for industry templates: one row per template version."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.storage.models import TemplateRow


async def versions(session: AsyncSession, template_id: str) -> list[TemplateRow]:
    """Every version of a template, oldest first."""
    rows = await session.execute(
        select(TemplateRow).where(TemplateRow.id == template_id).order_by(TemplateRow.version)
    )
    return list(rows.scalars())


async def version(
    session: AsyncSession, template_id: str, number: int | None
) -> TemplateRow | None:
    """One version of a template, the latest when ``number`` is None."""
    query = select(TemplateRow).where(TemplateRow.id == template_id)
    if number is None:
        query = query.order_by(TemplateRow.version.desc()).limit(1)
    else:
        query = query.where(TemplateRow.version == number)
    return (await session.execute(query)).scalars().first()


async def visible(session: AsyncSession, owners: Collection[str] | None) -> list[TemplateRow]:
    """Every version of the node's templates and of those owned by ``owners`` (None: all)."""
    query = select(TemplateRow)
    if owners is not None:
        query = query.where(
            or_(TemplateRow.owner_prefix.is_(None), TemplateRow.owner_prefix.in_(owners))
        )
    rows = await session.execute(query.order_by(TemplateRow.id, TemplateRow.version))
    return list(rows.scalars())


async def add(
    session: AsyncSession,
    *,
    template_id: str,
    number: int,
    owner_prefix: str | None,
    definition: dict[str, Any],
    now: datetime,
) -> bool:
    """Store a new version; False when that version exists already (a concurrent writer)."""
    try:
        async with session.begin_nested():
            session.add(
                TemplateRow(
                    id=template_id,
                    version=number,
                    owner_prefix=owner_prefix,
                    definition=definition,
                    created_at=now,
                )
            )
    except IntegrityError:
        return False
    return True


async def change(
    session: AsyncSession, template_id: str, number: int, definition: dict[str, Any]
) -> None:
    await session.execute(
        update(TemplateRow)
        .where(TemplateRow.id == template_id, TemplateRow.version == number)
        .values(definition=definition)
    )
