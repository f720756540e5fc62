"""Migrating a node that already holds identifiers: they get a history and indexed references."""

from __future__ import annotations

import asyncio
import os
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

import migrations
from app.registry.history import record_at
from app.storage import history as history_repo
from app.storage.models import HandleRow
from tests.conftest import _create_pg_database, _drop_pg_database

CREATED = datetime(2026, 1, 1, tzinfo=UTC)
UPDATED = datetime(2026, 2, 1, tzinfo=UTC)
UNIT = "88.999.1/UNIT-1"
CASE = "88.999.1/CASE-1"
VALUES = [
    {
        "index": 1,
        "type": "PARENT",
        "data": {"format": "string", "value": "case"},
        "ttl": 86400,
        "timestamp": "2026-02-01T00:00:00Z",
        "references": [{"handle": CASE, "index": 1}],
    }
]


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    config.attributes["database_url"] = url
    config.attributes["configure_logger"] = False
    return config


async def _seed(url: str) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.execute(
            insert(HandleRow).values(
                handle=UNIT,
                prefix="88.999.1",
                values=VALUES,
                created_at=CREATED,
                updated_at=UPDATED,
            )
        )
    await engine.dispose()


async def _inspect(url: str) -> tuple[list[tuple[str, int, str, str]], object, object, object]:
    engine = create_async_engine(url)
    async with engine.connect() as conn, AsyncSession(conn) as session:
        entries = [
            (e.handle, e.version, e.operation, e.actor)
            for e in await history_repo.entries(session, UNIT)
        ]
        referrers = await history_repo.referrers(session, [CASE])
        then = await record_at(session, UNIT, UPDATED + timedelta(seconds=1))
        before = await record_at(session, UNIT, UPDATED - timedelta(seconds=1))
    await engine.dispose()
    return entries, referrers, then, before


def test_identifiers_that_exist_get_history_and_references(backend: str, tmp_path: Path) -> None:
    pg_name = None
    if backend == "postgresql":
        pg_name = f"idnode_migration_{os.getpid()}_{secrets.token_hex(3)}"
        url = asyncio.run(_create_pg_database(pg_name))
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    try:
        config = alembic_config(url)
        command.upgrade(config, "0001")
        asyncio.run(_seed(url))
        command.upgrade(config, "head")
        entries, referrers, then, before = asyncio.run(_inspect(url))
        assert entries == [(UNIT, 1, "create", "migration")]
        assert referrers == [(UNIT, CASE)]
        assert then is not None
        assert then.values[0].references[0].handle == CASE
        assert before is None  # history starts at the last change it knew of
        command.downgrade(config, "base")
        command.upgrade(config, "head")
    finally:
        if pg_name:
            asyncio.run(_drop_pg_database(pg_name))
