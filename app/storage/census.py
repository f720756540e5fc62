"""Counting what the node holds, for the monitoring gauges (a few COUNT queries)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, not_, select

from app.storage.database import AsyncSession
from app.storage.models import Device, Enterprise, HandleRow
from resolver.identifier import PREFIX_RECORD_PREFIX


@dataclass(frozen=True)
class Census:
    enterprises: int
    identifiers: int  # records of prefixes (0.NA/...) are not identifiers
    devices_online: int
    devices_offline: int


async def take_census(session: AsyncSession, *, online_since: datetime) -> Census:
    """How many enterprises, identifiers and online/offline devices there are now. A device
    is online when marked so and heard from since ``online_since``: right after a restart,
    or with no gateway running, nothing has yet marked offline those that fell silent."""
    enterprises = await session.scalar(select(func.count()).select_from(Enterprise))
    identifiers = await session.scalar(
        select(func.count()).select_from(HandleRow).where(HandleRow.prefix != PREFIX_RECORD_PREFIX)
    )
    online = and_(Device.online.is_(True), Device.last_seen >= online_since)
    counted_online, counted_offline = (
        await session.execute(
            select(
                func.count().filter(online),
                func.count().filter(not_(online)),
            )
        )
    ).one()
    return Census(enterprises or 0, identifiers or 0, counted_online or 0, counted_offline or 0)
