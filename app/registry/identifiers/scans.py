"""Scans: how often an identifier's public page was opened, per UTC day.

A scan is counted in memory (a dict increment, nothing else on the page's path) and the
counts are written in batches, as heartbeats are: every ``interval`` seconds, or sooner once
``batch_size`` identifiers are pending. Only counts and the first scan's time are kept; no
address, browser or anything else about who scanned.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import date, datetime

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from app.registry import clock
from app.storage import scans as repo
from app.storage.database import Database
from app.supervisor import idle

log = logging.getLogger("app.registry.scans")
BATCH_SIZE = 10_000
Pending = dict[tuple[str, date], tuple[int, datetime]]


class ScanRecorder:
    """Counts page scans per identifier and day in memory and writes them in batches."""

    def __init__(self, database: Database, *, interval: float, batch_size: int = BATCH_SIZE):
        self._database = database
        self._interval = interval
        self._batch_size = batch_size
        self._pending: Pending = {}
        self._full = asyncio.Event()
        self._writing = asyncio.Lock()
        self.scans = 0  # counted by this process (``/metrics``)

    def add(self, handle: str) -> None:
        at = clock.now()
        key = (handle, at.date())
        count, first = self._pending.get(key, (0, at))
        self._pending[key] = (count + 1, first)
        self.scans += 1
        if len(self._pending) >= self._batch_size:
            self._full.set()

    async def run(self) -> None:
        while True:
            await idle(self._full, self._interval)
            self._full.clear()
            await self.flush()

    async def flush(self) -> None:
        """Write what is pending (after any write already under way)."""
        async with self._writing:
            if not self._pending:
                return
            counts, self._pending = self._pending, {}
            try:
                async with self._database.write_session() as session:
                    await repo.add(session, counts)
                    await session.commit()
            except (SQLAlchemyError, OSError) as exc:
                log.warning("app.scans.flush_failed", extra={"error": str(exc)[:200]})
                for key, (count, first) in counts.items():  # kept for the next flush
                    held, earlier = self._pending.get(key, (0, first))
                    self._pending[key] = (held + count, min(first, earlier))


async def by_day(
    session: AsyncSession, handle: str, first: date, last: date
) -> list[tuple[date, int]]:
    """(day, scans) of the days in ``[first, last]`` that had scans."""
    return await repo.by_day(session, handle, first, last)


async def summary(session: AsyncSession, handle: str) -> tuple[int, datetime | None]:
    """Every scan of ``handle`` written so far, and when it was first scanned."""
    total, first = await repo.summary(session, handle)
    return total, clock.as_utc(first) if first is not None else None
