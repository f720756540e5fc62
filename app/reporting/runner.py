"""The reporting part of the lifespan: the node key, this process's statistics sampler and,
when ``IDNODE_UPSTREAM_REPORT_URL`` is set, the outbox delivery; named tasks under the
supervisor, cancelled and awaited on shutdown."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
from sqlalchemy.exc import SQLAlchemyError

from app.errors import DatabaseUnavailable
from app.reporting.delivery import Reporter, process_name
from app.reporting.keys import NodeKey, load_or_create
from app.reporting.statistics import StatisticsSampler
from app.settings import Settings
from app.storage.database import Database
from app.supervisor import Supervisor
from resolver.cache import ResolverCache

log = logging.getLogger("app.reporting")
POST_TIMEOUT = 10.0  # well under the lease, so a slow answer does not outlive the lease


@dataclass(frozen=True)
class Reporting:
    """What the API needs of reporting: the key (``GET /api/v1/node/key``) and the delivery
    (None when no report URL is configured)."""

    key: NodeKey
    reporter: Reporter | None
    sampler: StatisticsSampler


@contextlib.asynccontextmanager
async def reporting(
    settings: Settings, database: Database, cache: ResolverCache, supervisor: Supervisor
) -> AsyncIterator[Reporting]:
    """Load (or create) the node key, start the statistics sampler and, with a report URL,
    the delivery (under ``supervisor``); on exit stop both and write this process's last
    sample."""
    key = load_or_create(settings.node_key_file)
    sampler = StatisticsSampler(
        database,
        cache,
        interval=settings.report_stats_interval,
        flush=settings.report_stats_flush,
        name=process_name(),
    )
    running = [supervisor.start("app.reporting.statistics", sampler.run)]
    async with contextlib.AsyncExitStack() as stack:
        reporter = None
        if settings.upstream_report_url:
            http = await stack.enter_async_context(httpx.AsyncClient(timeout=POST_TIMEOUT))
            reporter = Reporter(database, settings, key, http=http)
            running.append(supervisor.start("app.reporting.delivery", reporter.run))
        try:
            yield Reporting(key, reporter, sampler)
        finally:
            for supervised in running:
                await supervised.stop()
            try:
                await sampler.sample()  # this process's uptime up to now
                if reporter is not None:
                    await reporter.release()
            except (DatabaseUnavailable, SQLAlchemyError) as exc:
                log.warning("app.reporting.shutdown_write_failed", extra={"reason": str(exc)[:200]})
