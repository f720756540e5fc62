"""Engines and sessions for SQLite and PostgreSQL.

SQLite allows one writer at a time. A read-then-write transaction that starts as a reader can
fail to upgrade when another writer got in first, so write sessions begin with
``BEGIN IMMEDIATE`` on a separate engine (taking the write lock up front), while readers keep
plain deferred transactions and, in WAL mode, never wait for writers. On PostgreSQL both are
one engine; writers lock rows with ``SELECT ... FOR UPDATE``.

Every engine, the resolver's pool and the sessions' raw driver connections report the
database being away as :class:`app.errors.DatabaseUnavailable` (see ``app/storage/outages.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import asyncpg  # type: ignore[import-untyped]
import orjson
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.errors import DatabaseUnusable
from app.settings import Settings
from app.storage.invalidation import FRESHNESS
from app.storage.outages import OUTAGES, Outages
from app.storage.reads import PostgresStore, SqlStore
from app.storage.replicas import (
    WAL_POSITION,
    Freshness,
    Replica,
    Replicas,
    ReplicatedStore,
    parse_lsn,
    replica_name,
    wal_end,
)
from resolver.engine import Store

_GENERATION = "idnode_generation"  # the key, in a pooled connection's info, of when it was made


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


async def _no_reset(_connection: asyncpg.Connection) -> None:
    """The resolver's pool runs single read-only statements, which leave no session state
    behind; asyncpg's default reset would add a round trip (RESET ALL; UNLISTEN; ...) to
    every lookup."""


class Database:
    """The node's engines and session factories, built in the lifespan and disposed there."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.url = settings.database_url
        self.is_sqlite = settings.is_sqlite
        if self.is_sqlite:
            self.engine = self._sqlite_engine(settings, begin="BEGIN")
            self.write_engine = self._sqlite_engine(settings, begin="BEGIN IMMEDIATE")
        else:
            self.engine = self._postgres_engine(settings.database_url)
            self.write_engine = self.engine
        self._pool: asyncpg.Pool | None = None
        self.outages = Outages()
        # Bumped when the primary may have moved: pooled connections made before are replaced.
        self._generation = 0
        self._expiring: set[asyncio.Task[None]] = set()
        for engine in {id(e): e for e in (self.engine, self.write_engine)}.values():
            self.outages.watch(engine)
            if not self.is_sqlite:
                self._replaced_when_moved(engine)
        self.outages.on_read_only = self.primary_moved
        # With replicas, what each commit changed must be known before the cache is asked
        # again (see app/storage/replicas.py).
        self.freshness = (
            Freshness(self._primary_position, keep=3 * settings.replica_max_lag)
            if settings.replica_urls
            else None
        )
        self.replicas: Replicas | None = None  # opened with the resolver's store
        # Sessions carry the tracker for the driver work they do directly (COPY).
        info: dict[str, Any] = {OUTAGES: self.outages, FRESHNESS: self.freshness}
        self.read_session = async_sessionmaker(self.engine, expire_on_commit=False, info=info)
        self.write_session = async_sessionmaker(
            self.write_engine, expire_on_commit=False, info=info
        )

    def _postgres_engine(self, url: str) -> AsyncEngine:
        return create_async_engine(
            url,
            pool_size=self._settings.database_pool_size,
            max_overflow=self._settings.database_pool_size,
            pool_pre_ping=True,
            json_serializer=_json_dumps,
            json_deserializer=orjson.loads,
            connect_args=postgres_connect_args(self._settings),
        )

    def _replaced_when_moved(self, engine: AsyncEngine) -> None:
        """Hand out no connection made before :meth:`primary_moved`: SQLAlchemy then makes a
        new one, which looks for the primary (``target_session_attrs``)."""

        @event.listens_for(engine.sync_engine, "connect")
        def _made(_dbapi_connection: Any, record: Any) -> None:
            record.info[_GENERATION] = self._generation

        @event.listens_for(engine.sync_engine, "checkout")
        def _checkout(_dbapi_connection: Any, record: Any, _proxy: Any) -> None:
            if record.info.get(_GENERATION) != self._generation:
                raise DisconnectionError("made before the primary moved")

    def primary_moved(self) -> None:
        """The primary may now be another server (a failover or a switch-over, seen by a write
        refused as read-only or by the cache listener): every pooled connection, the
        engines' and the resolver's, is replaced when next used."""
        self._generation += 1
        if self._pool is not None:
            task = asyncio.get_running_loop().create_task(self._pool.expire_connections())
            self._expiring.add(task)
            task.add_done_callback(self._expiring.discard)

    @staticmethod
    def _sqlite_engine(settings: Settings, *, begin: str) -> AsyncEngine:
        engine = create_async_engine(
            settings.database_url,
            json_serializer=_json_dumps,
            json_deserializer=orjson.loads,
        )
        timeout = settings.sqlite_busy_timeout_ms

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy, not the driver, decide when transactions begin (see module doc).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            # The timeout first: switching to WAL takes a lock too, which another process
            # starting at the same moment (``idnode serve --workers N``) may hold. The mode
            # is kept in the file (migrations set it), so mostly there is nothing to switch.
            cursor.execute(f"PRAGMA busy_timeout={int(timeout)}")
            cursor.execute("PRAGMA journal_mode")
            if cursor.fetchone()[0] != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql(begin)

        return engine

    @property
    def sqlite_path(self) -> str:
        """The SQLite file's path ("" for an in-memory database)."""
        database = make_url(self.url).database or ""
        return "" if database == ":memory:" else database

    @property
    def asyncpg_dsn(self) -> str:
        """asyncpg's own DSN for the database (no SQLAlchemy driver suffix)."""
        return _asyncpg_dsn(self.url)

    @property
    def listen_dsn(self) -> str:
        """asyncpg's DSN for the cache listener: IDNODE_DATABASE_LISTEN_URL, else the
        database's (LISTEN needs a session, which a transaction pooler does not keep)."""
        return _asyncpg_dsn(self._settings.database_listen_url or self.url)

    async def store(self) -> Store:
        """The resolver's store: raw asyncpg on PostgreSQL (opened here), SQLAlchemy on SQLite."""
        if self.is_sqlite:
            return SqlStore(self.engine)
        pooled = self._settings.database_transaction_pooler
        primary = PostgresStore(await self._primary_pool(), self.outages, in_transaction=pooled)
        if self.freshness is None:
            return primary
        if self.replicas is None:
            members = [await self._replica(url) for url in self._settings.replica_urls]
            self.replicas = Replicas(
                members,
                self.freshness,
                self._primary_position,
                max_lag=self._settings.replica_max_lag,
            )
        return ReplicatedStore(primary, self.replicas)

    async def _primary_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            with self.outages.guard():
                self._pool = await self._pool_for(self.asyncpg_dsn, min_size=1)
        return self._pool

    async def _pool_for(self, dsn: str, **options: Any) -> asyncpg.Pool:
        return await asyncpg.create_pool(
            dsn,
            max_size=self._settings.database_pool_size,
            reset=_no_reset,
            **_statement_cache(self._settings),
            **options,
        )

    async def _replica(self, url: str) -> Replica:
        """A replica's pool and engine; nothing connects until it is used or sampled, so a
        replica that is down does not keep the node from starting."""
        outages = Outages()
        engine = self._postgres_engine(url)
        outages.watch(engine)
        pool = await self._pool_for(_asyncpg_dsn(url), min_size=0, timeout=2, command_timeout=2)
        pooled = self._settings.database_transaction_pooler
        return Replica(
            name=replica_name(url),
            engine=engine,
            sessions=async_sessionmaker(engine, expire_on_commit=False, info={OUTAGES: outages}),
            store=PostgresStore(pool, outages, in_transaction=pooled),
            pool=pool,
            outages=outages,
        )

    async def _primary_position(self) -> int:
        """The end of the WAL the primary has written so far (see ``replicas.wal_end``)."""
        pool = await self._primary_pool()
        with self.outages.guard():
            async with pool.acquire() as connection:
                if self._settings.database_transaction_pooler:
                    async with connection.transaction(readonly=True):
                        insert, block, segment = await connection.fetchrow(WAL_POSITION)
                else:
                    insert, block, segment = await connection.fetchrow(WAL_POSITION)
        return wal_end(parse_lsn(insert), block=block, segment=segment)

    def replica_session(self) -> AsyncSession:
        """A read session for reads that may be served by a replica (search, history,
        trace): on one that replayed every change this process was told of, else on the
        primary. Never for a read that a write depends on."""
        if self.replicas is None:
            return self.read_session()
        return self.replicas.session(self.read_session)

    def pool_use(self) -> tuple[int, int]:
        """Connections checked out and the pool sizes, over this process's pools (the
        SQLAlchemy engines and, on PostgreSQL, the resolver's asyncpg pool)."""
        in_use = size = 0
        engines = {id(e): e for e in (self.engine, self.write_engine)}.values()
        for engine in engines:
            pool: Any = engine.pool
            if hasattr(pool, "checkedout") and hasattr(pool, "size"):
                in_use += pool.checkedout()
                size += pool.size()
        if self._pool is not None:
            in_use += self._pool.get_size() - self._pool.get_idle_size()
            size += self._pool.get_max_size()
        return in_use, size

    async def dispose(self) -> None:
        if self.replicas is not None:
            await self.replicas.close()
        elif self.freshness is not None:
            await self.freshness.close()
        if self._pool is not None:
            await self._pool.close()
        await self.engine.dispose()
        if self.write_engine is not self.engine:
            await self.write_engine.dispose()


def postgres_connect_args(settings: Settings) -> dict[str, Any]:
    """asyncpg's arguments for SQLAlchemy's engines.

    Behind a pooler in transaction mode (PgBouncer before 1.21 has no prepared statements
    there) consecutive transactions of one client connection may run on different server
    connections, and a named prepared statement made in one is missing, or taken, in the
    next. The node then uses unnamed statements only (asyncpg's, when its statement cache is
    off) and lets SQLAlchemy cache none; each lives within the transaction that made it.
    """
    if not settings.database_transaction_pooler:
        return {}
    return {**_statement_cache(settings), "prepared_statement_cache_size": 0}


def _statement_cache(settings: Settings) -> dict[str, Any]:
    return {"statement_cache_size": 0} if settings.database_transaction_pooler else {}


def _asyncpg_dsn(url: str) -> str:
    """asyncpg's DSN for a SQLAlchemy URL: no driver suffix, and several hosts (SQLAlchemy's
    ``?host=H1:5432&host=H2:5433``) listed where asyncpg reads them, ``@H1:5432,H2:5433/``
    (of a query parameter given twice asyncpg keeps only the last)."""
    dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)
    head, _, query = dsn.partition("?")
    pairs = parse_qsl(query, keep_blank_values=True)
    hosts = [value for key, value in pairs if key == "host"]
    if len(hosts) < 2:
        return dsn
    rest = urlencode([(k, v) for k, v in pairs if k != "host"], safe=":,/")
    before, _, path = head.partition("@/") if "@/" in head else head.partition(":///")
    at = "@" if "@/" in head else "://"
    return f"{before}{at}{','.join(hosts)}/{path}" + (f"?{rest}" if rest else "")


def check_usable(database_url: str) -> None:
    """Raise :class:`DatabaseUnusable` when a SQLite file cannot be created or written where
    the URL says (SQLite would fail later, with a message that names no path, or keep
    logging "attempt to write a readonly database" while the node serves reads)."""
    url = make_url(database_url)
    if not url.drivername.startswith("sqlite") or url.database in (None, "", ":memory:"):
        return
    file = Path(url.database).absolute()
    folder = file.parent
    if not folder.is_dir():
        raise DatabaseUnusable(
            f"the folder of the SQLite database {file} does not exist: create it "
            f"(mkdir -p {folder}) or set IDNODE_DATABASE_URL (or IDNODE_DATA_DIR)"
        )
    if file.exists() and not _sqlite_writes(file):
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            raise DatabaseUnusable(
                f"the SQLite database {file} is on a read-only file system: mount it "
                "read-write or choose another place with IDNODE_DATABASE_URL (or IDNODE_DATA_DIR)"
            )
        raise DatabaseUnusable(
            f"the SQLite database {file} is read-only for this user: make it writable "
            f"(chmod u+rw {file}; a file marked immutable: chattr -i {file}) or run the node "
            "as its owner"
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DatabaseUnusable(
            f"cannot write in {folder}, where the SQLite database {file.name} and its journal "
            "files live: make the folder writable for this user or choose another folder "
            "with IDNODE_DATABASE_URL (or IDNODE_DATA_DIR)"
        )


_REFUSED = {sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM}


def _sqlite_writes(file: Path) -> bool:
    """Whether SQLite can write ``file``: a real write, rolled back, so that root (for whom
    every permission check passes), read-only mounts and immutable files are all found. A
    database busy with another writer counts as writable."""
    try:
        with contextlib.closing(
            sqlite3.connect(f"{file.as_uri()}?mode=rw", uri=True, timeout=5, isolation_level=None)
        ) as probe:
            probe.execute("BEGIN")
            try:
                probe.execute("CREATE TABLE idnode_write_check (x)")
            finally:
                probe.execute("ROLLBACK")
    except sqlite3.OperationalError as exc:
        return exc.sqlite_errorcode & 0xFF not in _REFUSED
    return True


def unusable(database_url: str, exc: BaseException) -> DatabaseUnusable:
    """The one-line explanation of why connecting to (or migrating) the database failed."""
    url = make_url(database_url)
    where = _where(url)
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    reason = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
    if "does not exist" in reason and url.drivername.startswith("postgresql"):
        command = f"createdb -h {url.host or 'localhost'} -p {url.port or 5432}"
        command += f" -U {url.username}" if url.username else ""
        return DatabaseUnusable(
            f"PostgreSQL database {url.database!r} does not exist on {where}: "
            f"create it ({command} {url.database}) or fix IDNODE_DATABASE_URL"
        )
    no_primary = asyncpg.exceptions.TargetServerAttributeNotMatched
    if isinstance(cause, no_primary) or isinstance(cause.__cause__, no_primary):
        return DatabaseUnusable(
            f"none of the PostgreSQL hosts {where} takes writes now (target_session_attrs="
            f"{url.query.get('target_session_attrs')}): start the primary or promote a "
            "standby, or fix IDNODE_DATABASE_URL"
        )
    if isinstance(cause, OSError) and not url.drivername.startswith("sqlite"):
        return DatabaseUnusable(
            f"cannot reach PostgreSQL at {where} ({reason}): is it running? "
            "Check the host and port in IDNODE_DATABASE_URL"
        )
    return DatabaseUnusable(f"cannot use the database {where}: {reason}")


def place(database_url: str) -> str:
    """Where the database is, for messages: the SQLite file, or HOST:PORT/DB (several hosts
    as listed)."""
    return _where(make_url(database_url))


def _where(url: URL) -> str:
    if url.drivername.startswith("sqlite"):
        return str(Path(url.database or "").absolute())
    hosts = url.query.get("host")
    if isinstance(hosts, tuple):  # several (failover): as listed
        return f"{','.join(hosts)}/{url.database or ''}"
    return f"{url.host or 'localhost'}:{url.port or 5432}/{url.database or ''}"


__all__ = ["AsyncSession", "Database", "check_usable", "place", "unusable"]
