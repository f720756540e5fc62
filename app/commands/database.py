"""The database checks every command starts with: settings from the environment, a
database migrated (or refused in one line), a unit of work in one transaction."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import click
from alembic import command
from alembic.config import Config
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

import migrations
from app.errors import DatabaseUnusable, NodeError
from app.settings import Settings
from app.storage.database import Database, check_usable, place, unusable

T = TypeVar("T")


def settings_from_env() -> Settings:
    try:
        settings = Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"IDNODE_{'_'.join(map(str, e['loc'])).upper()}: "
            + e["msg"].removeprefix("Value error, ")
            for e in exc.errors()
        )
        raise click.ClickException(f"invalid setting: {problems}") from exc
    if settings.in_data_dir():
        try:
            settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise click.ClickException(
                f"cannot create the data directory {settings.data_dir} ({exc.strerror}): "
                "set IDNODE_DATA_DIR to a folder this user may write"
            ) from exc
    return settings


def migrate_database(settings: Settings) -> None:
    """Bring the schema to the newest migration, or raise :class:`DatabaseUnusable`."""
    check_usable(settings.database_url)
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    config.attributes["database_url"] = settings.database_url
    config.attributes["node_key_file"] = settings.node_key_file  # seals stored secrets
    config.attributes["configure_logger"] = False
    try:
        command.upgrade(config, "head")
    except (DBAPIError, OSError) as exc:  # connecting failed (migrations themselves are tested)
        raise unusable(settings.database_url, exc) from exc


def database_ready(settings: Settings, *, migrate: bool = True) -> None:
    """Migrate (or only check a SQLite file's place); a database that cannot be used ends
    the command in one line."""
    try:
        if migrate:
            migrate_database(settings)
        else:
            check_usable(settings.database_url)
    except DatabaseUnusable as exc:
        raise click.ClickException(exc.message) from exc


def in_transaction(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    database_ready(settings)

    async def run() -> T:
        database = Database(settings)
        try:
            async with database.write_session() as session:
                result = await work(session)
                await session.commit()
                return result
        finally:
            await database.dispose()

    try:
        return asyncio.run(run())
    except NodeError as exc:
        raise click.ClickException(exc.message) from exc


def echo_json(data: object) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


@click.command()
def migrate() -> None:
    """Create or upgrade the database schema to the newest version."""
    settings = settings_from_env()
    database_ready(settings)
    click.echo(f"database schema is up to date ({where(settings)})")


def where(settings: Settings) -> str:
    url = settings.database_url
    if settings.is_sqlite:
        return f"SQLite {url.partition(':///')[2]}"
    if "host=" in url:  # hosts in the query (several, for failover)
        return place(url)
    return url.split("@")[-1] if "@" in url else url
