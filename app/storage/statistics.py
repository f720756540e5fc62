"""SQL for the statistics and the monthly report: samples each process writes, and counts
read from history, enterprises and prefixes for a period."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.storage.copy import is_postgres
from app.storage.models import Enterprise, HistoryEntry, Prefix, StatisticsSample


def _identifiers() -> ColumnElement[bool]:
    """History rows of identifiers, not of the node's own prefix records (``0.NA/...``)."""
    return HistoryEntry.handle.not_like("0.NA/%")


async def add_sample(
    session: AsyncSession,
    *,
    process: str,
    started_at: datetime,
    ended_at: datetime,
    resolutions: int,
    errors: int,
) -> int:
    """Begin a process's sample; its id."""
    row = await session.execute(
        insert(StatisticsSample)
        .values(
            process=process,
            started_at=started_at,
            ended_at=ended_at,
            resolutions=resolutions,
            errors=errors,
        )
        .returning(StatisticsSample.id)
    )
    return int(row.scalar_one())


async def extend_sample(
    session: AsyncSession, sample: int, *, ended_at: datetime, resolutions: int, errors: int
) -> None:
    """Bring a sample begun by :func:`add_sample` up to ``ended_at`` with its counts so far."""
    await session.execute(
        update(StatisticsSample)
        .where(StatisticsSample.id == sample)
        .values(ended_at=ended_at, resolutions=resolutions, errors=errors)
    )


async def samples_overlapping(
    session: AsyncSession, start: datetime, end: datetime
) -> Sequence[Row[datetime, datetime, int, int]]:
    """(started_at, ended_at, resolutions, errors) of every sample overlapping the period."""
    rows = await session.execute(
        select(
            StatisticsSample.started_at,
            StatisticsSample.ended_at,
            StatisticsSample.resolutions,
            StatisticsSample.errors,
        ).where(StatisticsSample.ended_at > start, StatisticsSample.started_at < end)
    )
    return rows.all()


async def sampled_span(session: AsyncSession) -> tuple[datetime | None, datetime | None]:
    """When the first statistics sample started (the node first served) and the last ended."""
    row = (
        await session.execute(
            select(func.min(StatisticsSample.started_at), func.max(StatisticsSample.ended_at))
        )
    ).one()
    return row[0], row[1]


async def changes_by_operation(
    session: AsyncSession, start: datetime, end: datetime
) -> dict[str, int]:
    """History entries of identifiers in ``[start, end)`` by operation (create/update/delete)."""
    rows = await session.execute(
        select(HistoryEntry.operation, func.count())
        .where(HistoryEntry.at >= start, HistoryEntry.at < end, _identifiers())
        .group_by(HistoryEntry.operation)
    )
    return {operation: n for operation, n in rows.all()}


async def identifiers_at(session: AsyncSession, moment: datetime) -> int:
    """Identifiers that existed at ``moment``: creations minus deletions before it (history
    is complete, so this holds for any past moment)."""
    created, deleted = (
        await session.execute(
            select(
                func.count().filter(HistoryEntry.operation == "create"),
                func.count().filter(HistoryEntry.operation == "delete"),
            ).where(HistoryEntry.at < moment, _identifiers())
        )
    ).one()
    return int(created - deleted)


async def enterprises_created(
    session: AsyncSession, start: datetime, end: datetime
) -> tuple[int, int]:
    """(created in ``[start, end)``, existing at ``end``)."""
    return await _created(session, Enterprise.created_at, start, end)


async def prefixes_created(
    session: AsyncSession, start: datetime, end: datetime
) -> tuple[int, int]:
    return await _created(session, Prefix.created_at, start, end)


async def _created(
    session: AsyncSession, column: Any, start: datetime, end: datetime
) -> tuple[int, int]:
    new, total = (
        await session.execute(
            select(func.count().filter(column >= start), func.count()).where(column < end)
        )
    ).one()
    return int(new), int(total)


async def changes_by_enterprise(
    session: AsyncSession, start: datetime, end: datetime
) -> list[tuple[str, str, str, int]]:
    """(prefix, enterprise name, operation, count) of identifier changes in the period."""
    handle = HistoryEntry.handle
    prefix = (
        func.split_part(handle, "/", 1)
        if is_postgres(session)
        else func.substr(handle, 1, func.instr(handle, "/") - 1)
    ).label("prefix")
    counts = (
        select(prefix, HistoryEntry.operation, func.count().label("n"))
        .where(HistoryEntry.at >= start, HistoryEntry.at < end, _identifiers())
        .group_by(prefix, HistoryEntry.operation)
        .subquery()
    )
    rows = await session.execute(
        select(counts.c.prefix, Enterprise.name, counts.c.operation, counts.c.n)
        .join(Prefix, Prefix.prefix == counts.c.prefix)
        .join(Enterprise, Enterprise.id == Prefix.enterprise_id)
    )
    return [(p, name, op, n) for p, name, op, n in rows.all()]
