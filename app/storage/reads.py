"""The resolver's view of the database: one primary-key read per cache miss.

``SqlStore`` reads through SQLAlchemy (SQLite); ``PostgresStore`` through a raw asyncpg pool of
its own, since SQLAlchemy's per-query work costs several times the lookup itself. The replica
router (``app/storage/replicas.py``) holds one ``PostgresStore`` per server.
"""

from __future__ import annotations

from typing import Any

import asyncpg  # type: ignore[import-untyped]
import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.storage.models import HandleRow
from app.storage.outages import Outages
from resolver.record import Record
from resolver.values import values_from_stored


class SqlStore:
    """The resolver's view of a SQLite database: one primary-key read per lookup."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def fetch(self, handle: str) -> Record | None:
        async with self._engine.connect() as conn:
            stored = (
                await conn.execute(select(HandleRow.values).where(HandleRow.handle == handle))
            ).scalar_one_or_none()
        if stored is None:
            return None
        return Record(handle, values_from_stored(stored))


class PostgresStore:
    """The resolver's view of a PostgreSQL database, through its own asyncpg pool.

    A cache miss is the hot path of cold traffic, and SQLAlchemy's per-query work costs
    several times the primary-key lookup itself; this is one prepared statement.
    """

    _FETCH = f"SELECT values::text FROM {HandleRow.__tablename__} WHERE handle = $1"  # noqa: S608

    # What a restarted or failed-over database leaves in the pool: connections that are dead,
    # or that saw the server's shutdown message mid-way and are stuck. A lookup that meets one
    # has every pooled connection replaced and reads again, once.
    _CONNECTION_LOST = (
        asyncpg.exceptions.PostgresConnectionError,
        asyncpg.exceptions.OperatorInterventionError,
        asyncpg.exceptions.InterfaceError,
        asyncpg.exceptions.InternalClientError,
        ConnectionError,
    )

    def __init__(self, pool: asyncpg.Pool, outages: Outages, *, in_transaction: bool = False):
        self._pool = pool
        self._outages = outages
        # Behind a transaction pooler an unnamed statement's parse and execute must share a
        # transaction, or they may reach different server connections.
        self._read = self._read_in_transaction if in_transaction else self._pool.fetchval

    async def fetch(self, handle: str) -> Record | None:
        with self._outages.guard():
            try:
                stored = await self._read(self._FETCH, handle)
            except self._CONNECTION_LOST:
                await self._pool.expire_connections()
                stored = await self._read(self._FETCH, handle)
        self._outages.answered()
        if stored is None:
            return None
        return Record(handle, values_from_stored(orjson.loads(stored)))

    async def _read_in_transaction(self, query: str, handle: str) -> Any:
        async with self._pool.acquire() as connection, connection.transaction(readonly=True):
            return await connection.fetchval(query, handle)
