"""The write side of keeping every process's resolver cache in step with the database.

A write records what it changed (``touched``) and, after its commit, evicts it from the
writing process's cache (``evict_touched``). Inside the transaction, so that other processes
learn of the change exactly when it commits, ``touched`` also tells them: on PostgreSQL with
``pg_notify``; on SQLite by appending the identifiers to the ``record_changes`` log. The
workers that hear of other processes' writes (LISTEN on PostgreSQL, the log on SQLite) are in
``app/cache_sync.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Protocol

from sqlalchemy import Column, Integer, MetaData, Table, Text, delete, insert, text
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

# SQLite's change log: one row per ``touched`` call, its identifiers one per line. Only SQLite
# databases have it (migration 0013), so it is kept out of the models' metadata.
RECORD_CHANGES = Table(
    "record_changes",
    MetaData(),
    Column("seq", Integer, primary_key=True),
    Column("handles", Text, nullable=False),
)
# A change of more identifiers than this (a bulk chunk) is logged as EVERYTHING: clearing a
# cache costs less than thousands of evictions, in every process.
LOGGED_HANDLES = 1000
# The log keeps about this many rows; a watcher that fell further behind (it reads 20 times
# a second) finds its place gone and clears its cache.
KEPT_CHANGES = 10_000
PRUNE_EVERY = 100


async def touched(session: AsyncSession, handles: Iterable[str]) -> None:
    """Record that ``handles`` changed in this transaction (and tell other processes)."""
    names = session.info.setdefault("touched", set())
    fresh = [h for h in handles if h not in names]
    names.update(fresh)
    if not fresh or session.bind is None:
        return
    if session.bind.dialect.name == "postgresql":
        await session.execute(
            text("SELECT pg_notify(:channel, h) FROM unnest(CAST(:handles AS text[])) AS h"),
            {"channel": CHANNEL, "handles": fresh},
        )
    else:
        await _log_change(session, fresh)


async def _log_change(session: AsyncSession, handles: list[str]) -> None:
    logged = "\n".join(handles) if len(handles) <= LOGGED_HANDLES else EVERYTHING
    seq = await session.scalar(
        insert(RECORD_CHANGES).values(handles=logged).returning(RECORD_CHANGES.c.seq)
    )
    if seq is not None and seq % PRUNE_EVERY == 0:
        await session.execute(
            delete(RECORD_CHANGES).where(RECORD_CHANGES.c.seq <= seq - KEPT_CHANGES)
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
