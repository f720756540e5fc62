"""SQL for recalls: the index of recalled identifiers the resolver reads whole."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.storage.models import Recall


async def put(session: AsyncSession, *, handle: str, reason: str, at: datetime, actor: str) -> None:
    """Record (or restate) that ``handle`` is recalled."""
    await session.execute(delete(Recall).where(Recall.handle == handle))
    session.add(Recall(handle=handle, reason=reason, recalled_at=at, actor=actor))
    await session.flush()


async def remove(session: AsyncSession, handle: str) -> bool:
    """Forget the recall of ``handle``; whether there was one."""
    result = await session.execute(delete(Recall).where(Recall.handle == handle))
    return bool(getattr(result, "rowcount", 0))


async def every(session: AsyncSession) -> dict[str, tuple[str, datetime]]:
    """handle -> (reason, time) of every recall (few: recalls are rare events)."""
    rows = await session.execute(select(Recall.handle, Recall.reason, Recall.recalled_at))
    return {handle: (reason, at) for handle, reason, at in rows.all()}
