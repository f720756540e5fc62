"""Keeping this process's resolver cache in step with writes by other processes.

Writes record what they changed and notify (``app/storage/invalidation.py``). Here are the
workers that hear of it, run under the supervisor as the ``cache-invalidation`` task:
- on PostgreSQL, :class:`PostgresListener` LISTENs and evicts each notified identifier. When
  its connection drops (database restart, failover) it reconnects with back-off and clears
  the whole cache, since notices sent meanwhile are lost.
- on SQLite (one machine, possibly several worker processes), :class:`SqliteWatcher` watches
  ``PRAGMA data_version``, which changes when another connection commits, and then reads the
  identifiers those commits changed from the ``record_changes`` log and evicts them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import asyncpg  # type: ignore[import-untyped]

from app.backoff import jittered
from app.storage.database import Database
from app.storage.invalidation import CHANNEL, EVERYTHING, LISTENER_NAME, Noticing
from app.supervisor import idle
from resolver.cache import ResolverCache

log = logging.getLogger("app.storage.invalidation")
# Whether the listener's server stopped being the primary: promoted away from (a standby
# now) or fenced read-only before a switch-over.
_STILL_PRIMARY = "SELECT pg_is_in_recovery() OR current_setting('transaction_read_only') = 'on'"


async def cache_sync(database: Database, cache: ResolverCache) -> None:
    """The worker for this database: LISTEN on PostgreSQL, the data version on SQLite."""
    if database.is_sqlite:
        await SqliteWatcher(database.sqlite_path, cache).run()
    else:
        await PostgresListener(
            database.listen_dsn,
            cache,
            freshness=database.freshness,
            on_moved=database.primary_moved,
        ).run()


class PostgresListener:
    """LISTENs for invalidations from every process sharing the database."""

    def __init__(
        self,
        dsn: str,
        cache: ResolverCache,
        *,
        max_backoff: float = 5.0,
        freshness: Noticing | None = None,
        on_moved: Callable[[], None] | None = None,
    ) -> None:
        self._dsn = dsn
        self._cache = cache
        self._freshness = freshness
        self._max_backoff = max_backoff
        self._on_moved = on_moved
        # A DSN that asks for the primary (several hosts, for failover): the probe checks
        # that the server still is one, so that a switch-over that keeps the old primary
        # up, read-only, moves the listener too.
        attrs = parse_qs(urlsplit(dsn).query).get("target_session_attrs", [""])[-1]
        self._probe = _STILL_PRIMARY if attrs in ("read-write", "primary") else "SELECT false"
        self.connected = asyncio.Event()

    async def run(self) -> None:
        failures = 0
        while True:
            lost = asyncio.Event()
            try:
                connection = await asyncpg.connect(
                    self._dsn, server_settings={"application_name": LISTENER_NAME}
                )
            except (
                OSError,
                asyncpg.PostgresError,
                asyncpg.exceptions.TargetServerAttributeNotMatched,  # no primary yet (failover)
            ) as exc:
                log.warning("cache.listener.connect_failed", extra={"error": str(exc)})
                failures += 1
                await asyncio.sleep(jittered(failures, cap=self._max_backoff, first=0.1))
                continue
            try:
                connection.add_termination_listener(lambda _conn, lost=lost: lost.set())
                await connection.add_listener(CHANNEL, self._on_notice)
                # Notices may have been missed while we were not listening.
                if self._freshness is not None:
                    self._freshness.listening = True
                self._on_notice(connection, 0, CHANNEL, EVERYTHING)
                self.connected.set()
                failures = 0
                await self._wait_until_lost(connection, lost)
                if self._on_moved is not None:
                    self._on_moved()  # the pools' connections may be on that server too
            finally:
                self.connected.clear()
                if self._freshness is not None:
                    self._freshness.listening = False
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(1):
                        await connection.close()
            log.warning("cache.listener.reconnecting")

    async def _wait_until_lost(self, connection: asyncpg.Connection, lost: asyncio.Event) -> None:
        # The termination callback fires on a clean close; a server crash may only show up
        # as a failing query, so probe the connection too.
        while not await idle(lost, 2):
            try:
                async with asyncio.timeout(2):
                    if await connection.fetchval(self._probe):
                        log.warning("cache.listener.not_primary")
                        lost.set()
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
                lost.set()

    def _on_notice(self, _conn: object, _pid: int, _channel: str, handle: str) -> None:
        if self._freshness is not None:
            self._freshness.noticed((handle,))
        if handle == EVERYTHING:
            self._cache.clear()
        else:
            self._cache.evict(handle)


class SqliteWatcher:
    """Evicts what other connections (other worker processes) changed, as they commit.

    ``PRAGMA data_version`` is read 20 times a second on a plain ``sqlite3`` connection of its
    own, on the event loop: in WAL mode (the node's) a read never waits for a writer, and the
    check costs microseconds, where a round trip through the async driver's thread cost about
    a millisecond of CPU each time — several percent of a busy node's core. Only when it moved
    (any commit: a statistics sample too) is the change log read past this watcher's place;
    commits that changed no record leave the cache alone. A place the log no longer holds, or
    a log that cannot be read, clears the whole cache: never a stale answer.
    """

    def __init__(self, path: str, cache: ResolverCache, *, interval: float = 0.05):
        self._path = path
        self._cache = cache
        self._interval = interval

    async def run(self) -> None:
        if not self._path:
            return  # in memory: no other connection can see it, so none can change it
        # Read-only, no busy wait: this connection only reads the version and the log.
        with contextlib.closing(
            sqlite3.connect(f"file:{self._path}?mode=ro", uri=True, timeout=0)
        ) as conn:
            version, place = None, None
            while True:
                try:
                    now = conn.execute("PRAGMA data_version").fetchone()[0]
                    if now != version:
                        place = self._catch_up(conn, place)
                        version = now
                except sqlite3.OperationalError:  # locked for a moment: look again next tick
                    pass
                await asyncio.sleep(self._interval)

    def _catch_up(self, conn: sqlite3.Connection, place: int | None) -> int | None:
        """Evict what was logged after ``place`` (None: at start, nothing to evict); the
        new place."""
        try:
            if place is None:
                return int(
                    conn.execute("SELECT coalesce(max(seq), 0) FROM record_changes").fetchone()[0]
                )
            rows = conn.execute(
                "SELECT seq, handles FROM record_changes WHERE seq > ? ORDER BY seq", (place,)
            ).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" not in str(exc):
                raise
            log.warning("cache.watcher.no_change_log", extra={"error": str(exc)})
            self._cache.clear()  # a schema before migration 0013 (--no-migrate)
            return place
        if not rows:
            return place
        if rows[0][0] != place + 1:  # pruned before this watcher read it
            self._cache.clear()
            return int(rows[-1][0])
        for _seq, handles in rows:
            names = handles.split("\n")
            if EVERYTHING in names:
                self._cache.clear()
                break
            for handle in names:
                self._cache.evict(handle)
        return int(rows[-1][0])
