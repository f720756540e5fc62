"""Statistics a secondary node reports: registrations and changes (from history, exact across
processes), resolutions and errors (each process's own counts, sampled into the database) and
availability (the time the samples cover)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import DatabaseUnavailable
from app.registry import clock
from app.reporting.counters import process as process_counters
from app.storage import statistics as repo
from app.storage.database import Database
from resolver.cache import ResolverCache

log = logging.getLogger("app.reporting.statistics")
OPERATIONS = ("create", "update", "delete")


@dataclass(frozen=True)
class PeriodStatistics:
    """What the node did in ``[start, end)``, summed over every process."""

    start: datetime
    end: datetime
    changes: dict[str, int]  # history operation -> count (create, update, delete)
    resolutions: int
    errors: int
    covered_seconds: float

    @property
    def availability(self) -> float:
        """Share of the period some process of the node was up (0..1)."""
        span = (self.end - self.start).total_seconds()
        return min(1.0, self.covered_seconds / span) if span > 0 else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "registrations": self.changes["create"],
            "updates": self.changes["update"],
            "deletions": self.changes["delete"],
            "resolutions": self.resolutions,
            "errors": self.errors,
            "availability": round(self.availability, 6),
        }


async def period_statistics(
    session: AsyncSession, start: datetime, end: datetime
) -> PeriodStatistics:
    """Counts for ``[start, end)``: history by operation, samples that ended in the period,
    and the union of the time samples cover within it."""
    changes = dict.fromkeys(OPERATIONS, 0) | await repo.changes_by_operation(session, start, end)
    samples = await repo.samples_overlapping(session, start, end)
    ended_within = [s for s in samples if clock.as_utc(s.ended_at) <= end]
    spans = [(clock.as_utc(s.started_at), clock.as_utc(s.ended_at)) for s in samples]
    return PeriodStatistics(
        start=start,
        end=end,
        changes=changes,
        resolutions=sum(s.resolutions for s in ended_within),
        errors=sum(s.errors for s in ended_within),
        covered_seconds=covered(spans, start, end),
    )


def covered(spans: Iterable[tuple[datetime, datetime]], start: datetime, end: datetime) -> float:
    """Seconds of ``[start, end)`` inside at least one span (processes overlap)."""
    total = 0.0
    reach = start
    for begin, finish in sorted((max(b, start), min(f, end)) for b, f in spans):
        if finish <= reach:
            continue
        total += (finish - max(begin, reach)).total_seconds()
        reach = finish
    return total


class StatisticsSampler:
    """Writes this process's statistics sample every ``interval`` seconds, and a last one on
    shutdown, so its uptime and counts reach the database without a shared counter."""

    def __init__(
        self, database: Database, cache: ResolverCache, *, interval: float, name: str
    ) -> None:
        self._database = database
        self._cache = cache
        self._interval = interval
        self.name = name
        self._since = clock.now()
        self._resolutions = self._resolved()
        self._errors = process_counters.errors

    def _resolved(self) -> int:
        # Every lookup that reached the resolver: cache hits, negative hits, misses (loads).
        stats = self._cache.stats
        return stats.hits + stats.negative_hits + stats.misses

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.sample()
            except (DatabaseUnavailable, SQLAlchemyError) as exc:  # the next sample covers it
                log.warning("app.reporting.sample_failed", extra={"reason": str(exc)[:200]})

    async def sample(self) -> None:
        now = clock.now()
        resolved, errors = self._resolved(), process_counters.errors
        async with self._database.write_session() as session:
            await repo.add_sample(
                session,
                process=self.name,
                started_at=self._since,
                ended_at=now,
                resolutions=resolved - self._resolutions,
                errors=errors - self._errors,
            )
            await session.commit()
        self._since, self._resolutions, self._errors = now, resolved, errors


def window_start(moment: datetime, interval: float) -> datetime:
    """The start of the statistics window holding ``moment`` (windows align to the epoch)."""
    seconds = moment.timestamp()
    return moment - timedelta(seconds=seconds % interval)
