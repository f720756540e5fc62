"""SQL for scan counts: page scans per identifier and UTC day, added in batches."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.storage.copy import is_postgres
from app.storage.models import ScanCount


async def add(
    session: AsyncSession, counts: Mapping[tuple[str, date], tuple[int, datetime]]
) -> None:
    """Add ``(handle, day) -> (scans, first scan)`` to the stored counts, in one statement."""
    if not counts:
        return
    insert = postgresql_insert if is_postgres(session) else sqlite_insert
    rows = [
        {"handle": handle, "day": day, "scans": scans, "first_at": first}
        for (handle, day), (scans, first) in sorted(counts.items())
    ]
    statement = insert(ScanCount).values(rows)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[ScanCount.handle, ScanCount.day],
            set_={
                "scans": ScanCount.scans + statement.excluded.scans,
                "first_at": func.min(ScanCount.first_at, statement.excluded.first_at)
                if not is_postgres(session)
                else func.least(ScanCount.first_at, statement.excluded.first_at),
            },
        )
    )


async def by_day(
    session: AsyncSession, handle: str, start: date, end: date
) -> list[tuple[date, int]]:
    """(day, scans) of ``handle`` for days in ``[start, end]`` that had scans, oldest first."""
    rows = await session.execute(
        select(ScanCount.day, ScanCount.scans)
        .where(ScanCount.handle == handle, ScanCount.day >= start, ScanCount.day <= end)
        .order_by(ScanCount.day)
    )
    return [(day, int(scans)) for day, scans in rows.all()]


async def summary(session: AsyncSession, handle: str) -> tuple[int, datetime | None]:
    """All scans of ``handle`` and the first one's time."""
    total, first = (
        await session.execute(
            select(func.coalesce(func.sum(ScanCount.scans), 0), func.min(ScanCount.first_at)).where(
                ScanCount.handle == handle
            )
        )
    ).one()
    return int(total), first
