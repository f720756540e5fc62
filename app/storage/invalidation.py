"""The write side of keeping every process's resolver cache in step with the database.

A write records what it changed (``touched``) and, after its commit, evicts it from the
writing process's cache (``evict_touched``). On PostgreSQL ``touched`` also issues
``pg_notify`` inside the transaction, so the notice goes out exactly when the change commits.
The workers that hear of other processes' writes (LISTEN on PostgreSQL, ``PRAGMA
data_version`` on SQLite) are in ``app/cache_sync.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from resolver.cache import ResolverCache

CHANNEL = "idnode_invalidate"
# Touching this (never a valid identifier) forgets every cached answer, in every process: for
# a change that alters answers of identifiers it does not name (a recall covers everything
# below the recalled identifier in its trace).
EVERYTHING = "*"
LISTENER_NAME = "idnode-cache-listener"
# Session info key of the process's replica freshness map (app/storage/replicas.py), when the
# node reads from replicas: told of every commit's identifiers with the cache.
FRESHNESS = "idnode.freshness"
log = logging.getLogger("app.storage.invalidation")


async def touched(session: AsyncSession, handles: Iterable[str]) -> None:
    """Record that ``handles`` changed in this transaction (and tell other processes)."""
    names = session.info.setdefault("touched", set())
    fresh = [h for h in handles if h not in names]
    names.update(fresh)
    if fresh and session.bind is not None and session.bind.dialect.name == "postgresql":
        await session.execute(
            text("SELECT pg_notify(:channel, h) FROM unnest(CAST(:handles AS text[])) AS h"),
            {"channel": CHANNEL, "handles": fresh},
        )


def evict_touched(session: AsyncSession, cache: ResolverCache) -> None:
    """After a commit: forget what it changed in this process's cache."""
    names = session.info.pop("touched", ())
    freshness: Noticing | None = session.info.get(FRESHNESS)
    if freshness is not None and names:
        freshness.noticed(names)
    if EVERYTHING in names:
        cache.clear()
        return
    for handle in names:
        cache.evict(handle)


class Noticing(Protocol):
    """What learns of every invalidation besides the cache (replicas.Freshness), and
    whether notices can reach this process at all."""

    listening: bool

    def noticed(self, handles: Iterable[str]) -> None: ...
