"""PostgreSQL's COPY from inside a SQLAlchemy session's transaction, for bulk loads."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.storage.outages import guard


def is_postgres(session: AsyncSession) -> bool:
    return session.bind is not None and session.bind.dialect.name == "postgresql"


async def raw_connection(session: AsyncSession) -> asyncpg.Connection:
    """The asyncpg connection under the session, inside the session's transaction.

    SQLAlchemy's asyncpg adapter begins its transaction lazily, on the first statement it
    runs itself; a statement sent straight to the driver before that would run (and commit)
    on its own. So one trivial statement goes through SQLAlchemy first.
    """
    await session.execute(text("SELECT 1"))
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    return raw.driver_connection


async def copy_rows(
    session: AsyncSession, table: str, columns: Sequence[str], records: Sequence[tuple[Any, ...]]
) -> None:
    """COPY ``records`` into ``table`` (binary protocol) in the session's transaction."""
    if records:
        driver = await raw_connection(session)
        with guard(session):
            await driver.copy_records_to_table(table, records=records, columns=list(columns))
