"""Counting what the node holds, for the monitoring gauges (a few COUNT queries)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from app.storage.database import AsyncSession
from app.storage.models import Device, Enterprise, HandleRow
from resolver.identifier import PREFIX_RECORD_PREFIX


@dataclass(frozen=True)
class Census:
    enterprises: int
    identifiers: int  # records of prefixes (0.NA/...) are not identifiers
    devices_online: int
    devices_offline: int


async def take_census(session: AsyncSession) -> Census:
    """How many enterprises, identifiers and online/offline devices there are now."""
    enterprises = await session.scalar(select(func.count()).select_from(Enterprise))
    identifiers = await session.scalar(
        select(func.count()).select_from(HandleRow).where(HandleRow.prefix != PREFIX_RECORD_PREFIX)
    )
    online, offline = (
        await session.execute(
            select(
                func.count().filter(Device.online.is_(True)),
                func.count().filter(Device.online.is_(False)),
            )
        )
    ).one()
    return Census(enterprises or 0, identifiers or 0, online or 0, offline or 0)
