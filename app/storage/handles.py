"""SQL for identifiers: the resolver's store, and the writer's locked reads and writes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import orjson
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.storage.conflicts import insert_new
from app.storage.invalidation import touched
from app.storage.models import HandleRow, IdempotencyKey
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

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def fetch(self, handle: str) -> Record | None:
        stored = await self._pool.fetchval(self._FETCH, handle)
        if stored is None:
            return None
        return Record(handle, values_from_stored(orjson.loads(stored)))


async def lock(session: AsyncSession, handle: str) -> list[dict[str, Any]] | None:
    """The stored values, locked against other writers until the transaction ends."""
    return (
        await session.execute(
            select(HandleRow.values).where(HandleRow.handle == handle).with_for_update()
        )
    ).scalar_one_or_none()


async def insert(
    session: AsyncSession, *, handle: str, prefix: str, values: list[dict[str, Any]], now: datetime
) -> bool:
    """Create the row; False when a concurrent writer created it first."""
    statement = (
        insert_new(session, HandleRow)
        .values(handle=handle, prefix=prefix, values=values, created_at=now, updated_at=now)
        .returning(HandleRow.handle)
    )
    if (await session.execute(statement)).first() is None:
        return False
    await touched(session, [handle])
    return True


async def replace(
    session: AsyncSession, *, handle: str, values: list[dict[str, Any]], now: datetime
) -> None:
    await session.execute(
        update(HandleRow).where(HandleRow.handle == handle).values(values=values, updated_at=now)
    )
    await touched(session, [handle])


async def remove(session: AsyncSession, handle: str) -> bool:
    result = await session.execute(delete(HandleRow).where(HandleRow.handle == handle))
    await touched(session, [handle])
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def minted_for(session: AsyncSession, *, owner: str, key: str) -> str | None:
    return (
        await session.execute(
            select(IdempotencyKey.handle).where(
                IdempotencyKey.owner == owner, IdempotencyKey.key == key
            )
        )
    ).scalar_one_or_none()


async def remember_mint(
    session: AsyncSession, *, owner: str, key: str, handle: str, now: datetime
) -> bool:
    """Claim the key for this mint; False when another mint claimed it first."""
    try:
        async with session.begin_nested():
            session.add(IdempotencyKey(owner=owner, key=key, handle=handle, created_at=now))
    except IntegrityError:
        return False
    return True
