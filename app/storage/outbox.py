"""SQL for the transactional outbox: events written with the change they report, read and
marked by the one process holding the delivery lease (``app/reporting/delivery.py``)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.storage.conflicts import insert_new
from app.storage.copy import copy_rows, is_postgres
from app.storage.models import OutboxEvent, ReportingState

LEASE = "delivery"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _row(kind: str, data: dict[str, Any], at: datetime) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "kind": kind,
        "data": data,
        "created_at": at,
        "attempts": 0,
    }


async def add(session: AsyncSession, *, kind: str, data: dict[str, Any], at: datetime) -> None:
    """Record one event in the caller's transaction: it exists exactly when the change does."""
    await session.execute(insert(OutboxEvent).values(**_row(kind, data, at)))


async def add_many(
    session: AsyncSession, events: Sequence[tuple[str, dict[str, Any]]], *, at: datetime
) -> None:
    """Record a bulk load's events (``kind``, ``data`` each) set-based: COPY on PostgreSQL
    (the bulk path's own way of writing rows), one multi-row insert on SQLite."""
    if not events:
        return
    if not is_postgres(session):
        await session.execute(insert(OutboxEvent), [_row(k, d, at) for k, d in events])
        return
    await copy_rows(
        session,
        OutboxEvent.__tablename__,
        ("event_id", "kind", "data", "created_at", "attempts"),
        [(str(uuid.uuid4()), k, orjson.dumps(d).decode(), at, 0) for k, d in events],
    )


@dataclass(frozen=True, slots=True)
class Pending:
    """An undelivered event as it goes on the wire."""

    seq: int
    event_id: str
    kind: str
    at: datetime
    data: dict[str, Any]


async def pending(session: AsyncSession, limit: int) -> list[Pending]:
    """The oldest undelivered events, in delivery (id) order."""
    rows = await session.execute(
        select(
            OutboxEvent.id,
            OutboxEvent.event_id,
            OutboxEvent.kind,
            OutboxEvent.created_at,
            OutboxEvent.data,
        )
        .where(OutboxEvent.delivered_at.is_(None))
        .order_by(OutboxEvent.id)
        .limit(limit)
    )
    return [Pending(*row) for row in rows.all()]


async def mark_delivered(session: AsyncSession, seqs: Sequence[int], *, at: datetime) -> None:
    await session.execute(
        update(OutboxEvent)
        .where(OutboxEvent.id.in_(seqs), OutboxEvent.delivered_at.is_(None))
        .values(delivered_at=at, attempts=OutboxEvent.attempts + 1, last_error=None)
    )


async def mark_failed(session: AsyncSession, seqs: Sequence[int], *, error: str) -> None:
    await session.execute(
        update(OutboxEvent)
        .where(OutboxEvent.id.in_(seqs))
        .values(attempts=OutboxEvent.attempts + 1, last_error=error[:500])
    )


async def prune(session: AsyncSession, *, delivered_before: datetime) -> int:
    """Forget events the top-level node acknowledged before ``delivered_before``."""
    result = await session.execute(
        delete(OutboxEvent).where(OutboxEvent.delivered_at < delivered_before)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class OutboxState:
    """How far delivery has come: for the monthly report and the operator."""

    pending: int
    delivered: int
    oldest_pending: datetime | None
    max_attempts: int


async def state(session: AsyncSession) -> OutboxState:
    undelivered = OutboxEvent.delivered_at.is_(None)
    pending_count, oldest, attempts = (
        await session.execute(
            select(
                func.count(), func.min(OutboxEvent.created_at), func.max(OutboxEvent.attempts)
            ).where(undelivered)
        )
    ).one()
    delivered = (
        await session.execute(select(func.count()).where(OutboxEvent.delivered_at.is_not(None)))
    ).scalar_one()
    return OutboxState(pending_count, delivered, oldest, attempts or 0)


async def take_lease(
    session: AsyncSession, *, holder: str, now: datetime, ttl: float
) -> ReportingState | None:
    """Take or renew the delivery lease; None while another live holder has it.

    A conditional UPDATE works alike on both databases: PostgreSQL re-checks the condition
    after a concurrent taker's commit, SQLite writers run one at a time.
    """
    await session.execute(
        insert_new(session, ReportingState).values(
            name=LEASE, holder="", expires_at=_EPOCH, statistics_until=None
        )
    )
    taken = await session.execute(
        update(ReportingState)
        .where(
            ReportingState.name == LEASE,
            or_(ReportingState.holder == holder, ReportingState.expires_at < now),
        )
        .values(holder=holder, expires_at=now + timedelta(seconds=ttl))
    )
    if not taken.rowcount:  # type: ignore[attr-defined]
        return None
    return (
        await session.execute(select(ReportingState).where(ReportingState.name == LEASE))
    ).scalar_one()


async def release_lease(session: AsyncSession, *, holder: str) -> None:
    """Let another process take over at once (on shutdown)."""
    await session.execute(
        update(ReportingState)
        .where(ReportingState.name == LEASE, ReportingState.holder == holder)
        .values(expires_at=_EPOCH)
    )


async def statistics_reported(session: AsyncSession, until: datetime) -> None:
    await session.execute(
        update(ReportingState).where(ReportingState.name == LEASE).values(statistics_until=until)
    )
