"""Alembic environment: runs migrations on the async engine for the configured database."""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from app.settings import Settings
from app.storage.database import postgres_connect_args
from app.storage.models import Base

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def _url() -> str:
    return config.attributes.get("database_url") or Settings().database_url


def _run(connection: Connection) -> None:
    if connection.dialect.name == "sqlite":
        # WAL is kept in the database file: set once here, before `idnode serve` starts its
        # workers, so none of them has to switch the mode (which needs the file to itself).
        connection.exec_driver_sql("PRAGMA journal_mode=WAL")
        connection.commit()
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    url = _url()
    # Through a pooler in transaction mode, as the node itself connects (see the module).
    pooled = postgres_connect_args(Settings()) if url.startswith("postgresql") else {}
    engine = create_async_engine(url, connect_args=pooled)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async())
