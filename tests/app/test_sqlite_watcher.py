"""SQLite's cache watcher follows the change log: it evicts the identifiers other connections'
commits changed, leaves the cache alone on commits that changed none (a statistics sample),
and clears it when a change covers everything or it has lost its place in the log."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest

from app.cache_sync import SqliteWatcher
from app.commands.database import migrate_database
from app.settings import Settings
from app.storage import invalidation
from app.storage.database import Database
from app.storage.invalidation import EVERYTHING, LOGGED_HANDLES, touched
from resolver.cache import ResolverCache
from resolver.errors import HandleNotFound

CACHED = ["88.999.1/MILK-1", "88.999.1/MILK-2", "88.999.1/MILK-3"]


@pytest.fixture
def database_file(tmp_path: Path) -> Path:
    path = tmp_path / "watched.db"
    migrate_database(Settings(database_url=f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture
async def cache(database_file: Path) -> AsyncIterator[ResolverCache]:
    """A cache holding CACHED (as not-found answers), watched on the file."""
    cache = ResolverCache(negative_ttl=3600)
    for handle in CACHED:
        with contextlib.suppress(HandleNotFound):
            await cache.get_or_load(handle, _nothing)
    watcher = asyncio.create_task(SqliteWatcher(str(database_file), cache, interval=0.01).run())
    await asyncio.sleep(0.1)  # it has taken its place in the log
    try:
        yield cache
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


async def _nothing() -> None:
    return None


async def write(database_file: Path, *changes: Iterable[str]) -> None:
    """One commit, by another connection, that changed each group of identifiers in turn."""
    database = Database(Settings(database_url=f"sqlite+aiosqlite:///{database_file}"))
    try:
        async with database.write_session() as session:
            for handles in changes:
                await touched(session, handles)
            await session.commit()
    finally:
        await database.dispose()


def cached(cache: ResolverCache) -> list[str]:
    return [handle for handle in CACHED if cache.fresh(handle) is not None]


async def until(condition: object, cache: ResolverCache) -> list[str]:
    """Wait (up to 5 s) until the cached identifiers are ``condition``; what they are then."""
    for _ in range(500):
        if cached(cache) == condition:
            break
        await asyncio.sleep(0.01)
    return cached(cache)


async def test_a_commit_that_changed_no_record_leaves_the_cache(
    database_file: Path, cache: ResolverCache
) -> None:
    with contextlib.closing(sqlite3.connect(database_file)) as conn, conn:
        conn.execute(  # what a process taking the reporting lease writes
            "INSERT INTO reporting_state (name, holder, expires_at) "
            "VALUES ('delivery', 'elsewhere', '2026-12-03 00:00:00')"
        )
    await asyncio.sleep(0.3)
    assert cached(cache) == CACHED


async def test_only_what_was_changed_is_evicted(database_file: Path, cache: ResolverCache) -> None:
    await write(database_file, ["88.999.1/MILK-2"], ["88.999.1/OTHER"])
    assert await until(["88.999.1/MILK-1", "88.999.1/MILK-3"], cache) == [
        "88.999.1/MILK-1",
        "88.999.1/MILK-3",
    ]
    await write(database_file, ["88.999.1/MILK-3"])
    assert await until(["88.999.1/MILK-1"], cache) == ["88.999.1/MILK-1"]


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param([[EVERYTHING]], id="a recall"),
        pytest.param(
            [[f"88.999.1/BULK-{n}" for n in range(LOGGED_HANDLES + 1)]], id="a bulk chunk"
        ),
    ],
)
async def test_a_change_of_everything_clears_the_cache(
    database_file: Path, cache: ResolverCache, changes: list[list[str]]
) -> None:
    await write(database_file, *changes)
    assert await until([], cache) == []


async def test_a_watcher_whose_place_was_pruned_clears_the_cache(
    database_file: Path, cache: ResolverCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(invalidation, "KEPT_CHANGES", 3)
    monkeypatch.setattr(invalidation, "PRUNE_EVERY", 1)
    # Ten changes of identifiers it does not hold, in one commit: by the time it looks, the
    # log has only the last three, so it cannot know what the first seven changed.
    await write(database_file, *([f"88.999.1/OTHER-{n}"] for n in range(10)))
    assert await until([], cache) == []
