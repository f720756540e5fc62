"""SQL for the NB-IoT ingest queue: pushes answered 200, waiting to be applied.

Workers take rows under a lease (``claimed_by`` until ``claimed_until``) in short
transactions and apply them outside any transaction of the queue's: SQLite has one writer,
and the apply's own writes would wait forever behind a queue transaction held open. On
PostgreSQL, ``FOR UPDATE SKIP LOCKED`` lets claimers in several processes pass each other's
rows instead of queueing behind them; the lease condition, checked again on the locked row,
is what guarantees one holder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.storage.models import QueuedPush


@dataclass(frozen=True, slots=True)
class Claimed:
    """A queued push a worker holds the lease of."""

    id: int
    prefix: str
    platform: str
    imei: str
    kind: str
    details: dict[str, Any]
    attempts: int


async def waiting(session: AsyncSession, *, up_to: int) -> int:
    """How many pushes wait, counted no further than ``up_to`` (the cost stays bounded)."""
    some = select(QueuedPush.id).limit(up_to).subquery()
    return int((await session.execute(select(func.count()).select_from(some))).scalar_one())


async def add(
    session: AsyncSession,
    *,
    prefix: str,
    platform: str,
    imei: str,
    kind: str,
    details: dict[str, Any],
    at: datetime,
) -> None:
    await session.execute(
        insert(QueuedPush).values(
            prefix=prefix,
            platform=platform,
            imei=imei,
            kind=kind,
            details=details,
            received_at=at,
            attempts=0,
            not_before=at,
        )
    )


def _free(now: datetime) -> Any:
    """Due, and nobody holds a live lease on it."""
    return and_(
        QueuedPush.not_before <= now,
        or_(QueuedPush.claimed_until.is_(None), QueuedPush.claimed_until < now),
    )


async def claim(
    session: AsyncSession, *, holder: str, now: datetime, lease: float, limit: int
) -> list[Claimed]:
    """Take the lease of up to ``limit`` due pushes, oldest first."""
    oldest = (
        select(QueuedPush.id)
        .where(_free(now))
        .order_by(QueuedPush.id)
        .limit(limit)
        .with_for_update(skip_locked=True)  # PostgreSQL only; SQLite has one writer anyway
    )
    rows = await session.execute(
        update(QueuedPush)
        .where(QueuedPush.id.in_(oldest), _free(now))
        .values(claimed_by=holder, claimed_until=now + timedelta(seconds=lease))
        .returning(
            QueuedPush.id,
            QueuedPush.prefix,
            QueuedPush.platform,
            QueuedPush.imei,
            QueuedPush.kind,
            QueuedPush.details,
            QueuedPush.attempts,
        )
        .execution_options(synchronize_session=False)
    )
    return sorted((Claimed(*row) for row in rows.all()), key=lambda c: c.id)


async def remove(session: AsyncSession, ids: Sequence[int], *, holder: str) -> None:
    """Forget pushes that were applied (or dropped) under ``holder``'s lease."""
    if ids:
        await session.execute(
            delete(QueuedPush)
            .where(QueuedPush.id.in_(ids), QueuedPush.claimed_by == holder)
            .execution_options(synchronize_session=False)
        )


async def retry_later(
    session: AsyncSession, claimed: Claimed, *, holder: str, at: datetime
) -> None:
    """Give a push back after a transient failure, due again at ``at``."""
    await session.execute(
        update(QueuedPush)
        .where(QueuedPush.id == claimed.id, QueuedPush.claimed_by == holder)
        .values(
            attempts=QueuedPush.attempts + 1, not_before=at, claimed_by=None, claimed_until=None
        )
        .execution_options(synchronize_session=False)
    )


async def release(session: AsyncSession, *, holder: str, ids: Sequence[int] | None = None) -> None:
    """Give back ``holder``'s leases (all of them, or those of ``ids``) for others to take."""
    condition = QueuedPush.claimed_by == holder
    if ids is not None:
        if not ids:
            return
        condition = and_(condition, QueuedPush.id.in_(ids))
    await session.execute(
        update(QueuedPush)
        .where(condition)
        .values(claimed_by=None, claimed_until=None)
        .execution_options(synchronize_session=False)
    )


async def last_id(session: AsyncSession) -> int | None:
    return (await session.execute(select(func.max(QueuedPush.id)))).scalar_one_or_none()


async def left(session: AsyncSession, *, up_to_id: int) -> bool:
    """Whether any push queued at or before ``up_to_id`` is still waiting."""
    found = await session.execute(select(QueuedPush.id).where(QueuedPush.id <= up_to_id).limit(1))
    return found.first() is not None
