"""The database being away, seen in one place.

A stopped, restarting or overloaded PostgreSQL, or a locked or unwritable SQLite file, reaches
the node as the drivers' own errors (``ConnectionRefusedError``, asyncpg's
``CannotConnectNowError``, SQLAlchemy's ``OperationalError``, ``sqlite3``'s "database is
locked", ...). :class:`Outages` recognises them where the node meets the drivers — every
engine (connecting and executing) and the raw asyncpg paths — and raises
:class:`app.errors.DatabaseUnavailable` from them instead, which every door answers as a
retryable 503. It logs an outage once when it starts and once when the database answers again,
not once per failed request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from asyncpg.exceptions import TargetServerAttributeNotMatched  # type: ignore[import-untyped]
from sqlalchemy import event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.errors import DatabaseUnavailable

log = logging.getLogger("app.storage.outages")
OUTAGES = "outages"  # the key of a session's tracker in ``session.info``

# PostgreSQL SQLSTATEs of a server that cannot take work now: class 08 (connection
# exceptions), class 53 (insufficient resources: too many connections, disk full) and 57P01-03
# (shut down by an administrator, crashed, still starting), and 25006 (a read-only
# transaction: a write reached a standby or a primary fenced for a switch-over).
_SQLSTATES = ("08", "53", "57P01", "57P02", "57P03", "25006")
# A connection on a server that takes no writes stays so: it is dropped, and the next one
# looks for the primary again (``target_session_attrs`` in IDNODE_DATABASE_URL).
_READ_ONLY = "25006"
# SQLite result codes (and their extended forms) of a file that is locked, cannot be opened
# or cannot be written.
_SQLITE_CODES = (
    "SQLITE_BUSY",
    "SQLITE_LOCKED",
    "SQLITE_CANTOPEN",
    "SQLITE_READONLY",
    "SQLITE_IOERR",
    "SQLITE_FULL",
)


def guard(session: AsyncSession) -> AbstractContextManager[None]:
    """:meth:`Outages.guard` of the database ``session`` works on."""
    outages: Outages = session.info[OUTAGES]
    return outages.guard()


def is_outage(exc: BaseException) -> bool:
    """Whether a driver's error means the database is unreachable or cannot take work now
    (and not that the statement or the data is wrong)."""
    current: BaseException | None = exc
    for _ in range(4):  # the error, SQLAlchemy's wrapper, the driver's own, its cause
        if current is None:
            return False
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, OSError):  # refused, reset, unreachable, timed out
            return True
        if isinstance(current, TargetServerAttributeNotMatched):  # no host is the primary
            return True
        sqlstate = getattr(current, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(_SQLSTATES):
            return True
        sqlite_code = getattr(current, "sqlite_errorname", None)
        if isinstance(sqlite_code, str) and sqlite_code.startswith(_SQLITE_CODES):
            return True
        current = getattr(current, "orig", None) or current.__cause__
    return False


class Outages:
    """Translates the drivers' outage errors for one database and logs each outage once."""

    def __init__(self) -> None:
        self.since: float | None = None  # monotonic time the current outage was first seen
        # Told when a write found its server read-only: the primary has moved (or is about
        # to), so every pooled connection should look for it again.
        self.on_read_only: Callable[[], None] | None = None

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Raise :class:`DatabaseUnavailable` from an outage error of the block (for work
        that goes to a driver directly, past the engines)."""
        try:
            yield
        except Exception as exc:
            if not is_outage(exc):
                raise
            raise self._unavailable(exc) from exc

    def answered(self) -> None:
        """The database did work again: end the outage, if there was one."""
        if self.since is not None:
            down = time.monotonic() - self.since
            self.since = None
            log.info("storage.database_reachable_again", extra={"after_seconds": round(down, 1)})

    def watch(self, engine: AsyncEngine) -> None:
        """Translate ``engine``'s outage errors, when connecting and when executing, and
        notice when it connects or commits again."""
        sync_engine = engine.sync_engine

        @event.listens_for(sync_engine, "do_connect")
        def _connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
            # The drivers' connect errors (OSError, asyncpg's own) are not DBAPI errors, so
            # SQLAlchemy passes them through untouched: they are translated here.
            with self.guard():
                connection = dialect.connect(*cargs, **cparams)
            self.answered()
            return connection

        @event.listens_for(sync_engine, "handle_error")
        def _failed(context: ExceptionContext) -> BaseException | None:
            # A failed pre-ping is SQLAlchemy's cue to reconnect, not an answer to give;
            # cancellation stays cancellation.
            if context.is_pre_ping or not isinstance(context.original_exception, Exception):
                return None
            if _sqlstate(context.original_exception) == _READ_ONLY:
                context.is_disconnect = True  # SQLAlchemy then discards the pool's connections
                if self.on_read_only is not None:
                    self.on_read_only()
            if context.is_disconnect or is_outage(context.original_exception):
                return self._unavailable(context.original_exception)
            return None

        @event.listens_for(sync_engine, "commit")
        def _committed(_connection: Any) -> None:
            self.answered()

    def _unavailable(self, exc: BaseException) -> DatabaseUnavailable:
        if self.since is None:
            self.since = time.monotonic()
            log.warning("storage.database_unavailable", extra={"error": _first_line(exc)})
        return DatabaseUnavailable()


def _sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a driver's error SQLAlchemy wrapped (asyncpg's, as its adapter keeps it)."""
    cause = getattr(exc, "__cause__", None)
    return getattr(exc, "sqlstate", None) or getattr(cause, "sqlstate", None)


def _first_line(exc: BaseException) -> str:
    # SQLAlchemy appends the statement and a documentation link; the cause is the first line.
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else "no message"
