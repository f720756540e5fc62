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


HEARTBEAT = 60.0  # seconds: the longest a running sample goes unwritten, counts or not


class StatisticsSampler:
    """Keeps this process's statistics sample in the database: one row per statistics window
    (``interval``, aligned to the epoch), written again every ``flush`` seconds while the
    process counts something new (at least every minute, its uptime heartbeat) and on
    shutdown, so a report read while the node runs is at most ``flush`` seconds behind,
    without a shared counter.

    A row never ends in a later window than the one it was begun in: the first write after a
    window ends begins a new row where the last write ended. So each row is counted in one
    window's ``statistics`` event, and a window's rows no longer change once it is over."""

    def __init__(
        self,
        database: Database,
        cache: ResolverCache,
        *,
        interval: float,
        name: str,
        flush: float = HEARTBEAT,
    ) -> None:
        self._database = database
        self._cache = cache
        self._interval = interval
        self._tick = min(flush, interval)
        self.name = name
        self._written = (clock.now(), self._resolved(), process_counters.errors)
        self._row: tuple[int, datetime, int, int] | None = None  # id, window, counts at begin

    def _resolved(self) -> int:
        # Every lookup that reached the resolver: cache hits, negative hits, misses (loads).
        stats = self._cache.stats
        return stats.hits + stats.negative_hits + stats.misses

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._tick)
            try:
                await self.sample(only_if_new=True)
            except (DatabaseUnavailable, SQLAlchemyError) as exc:  # the next write covers it
                log.warning("app.reporting.sample_failed", extra={"reason": str(exc)[:200]})

    async def sample(self, *, only_if_new: bool = False) -> None:
        """Write what this process did up to now; with ``only_if_new``, only when it counted
        something since the last write, the window of its row ended, or the heartbeat is
        due."""
        now = clock.now()
        resolved, errors = self._resolved(), process_counters.errors
        since, resolved_before, errors_before = self._written
        window = window_start(now, self._interval)
        row = self._row if self._row is not None and self._row[1] == window else None
        window_ended = self._row is not None and row is None
        quiet = (resolved, errors) == (resolved_before, errors_before)
        heartbeat_due = (now - since).total_seconds() >= min(HEARTBEAT, self._interval)
        if only_if_new and quiet and not heartbeat_due and not window_ended:
            return
        async with self._database.write_session() as session:
            if row is None:
                begun = await repo.add_sample(
                    session,
                    process=self.name,
                    started_at=since,
                    ended_at=now,
                    resolutions=resolved - resolved_before,
                    errors=errors - errors_before,
                )
                row = (begun, window, resolved_before, errors_before)
            else:
                await repo.extend_sample(
                    session,
                    row[0],
                    ended_at=now,
                    resolutions=resolved - row[2],
                    errors=errors - row[3],
                )
            await session.commit()
        self._row, self._written = row, (now, resolved, errors)


def window_start(moment: datetime, interval: float) -> datetime:
    """The start of the statistics window holding ``moment`` (windows align to the epoch)."""
    seconds = moment.timestamp()
    return moment - timedelta(seconds=seconds % interval)
