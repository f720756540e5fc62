"""Inserts that tolerate an existing row, on either database."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession


def insert_new(session: AsyncSession, model: type[Any]) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING`` (PostgreSQL and SQLite both have it): no
    savepoint needed to survive a duplicate, and on PostgreSQL a concurrent insert of the
    same key waits for the other transaction, then does nothing."""
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    return insert(model).on_conflict_do_nothing()
