"""Reading from PostgreSQL streaming replicas without ever answering older data than a
write this process was told of.

The guarantee rests on the cache invalidation notices (``app/storage/invalidation.py``): a
notice is delivered only after its write committed, so the primary's WAL position read
*after* a notice arrived is at or past that commit. :class:`Freshness` reads it once per
burst of notices and remembers, per identifier, "fresh from LSN L"; until it is read the
identifier is read on the primary only. A cache miss reads a replica whose sampled replay
position is at or past L (and past the floor a notice for everything sets), else the
primary. Read sessions (search, history, trace) use a replica only when it replayed
everything this process was told of.

:class:`Replicas` samples, every ``interval`` seconds, the primary's WAL position (keeping a
short history) and each replica's replay position. A replica's lag is how long ago the
primary was where the replica is now, so an idle primary gives lag 0. A replica that does not
answer, or lags more than ``IDNODE_REPLICA_MAX_LAG``, is skipped until a sample says otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.storage.invalidation import EVERYTHING
from app.storage.outages import Outages
from resolver.engine import Store
from resolver.record import Record

log = logging.getLogger("app.storage.replicas")

# The primary's WAL insert position, and the sizes needed to turn it into a record end.
WAL_POSITION = (
    "SELECT pg_current_wal_insert_lsn()::text, current_setting('wal_block_size')::int, "
    "(SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size')"
)
REPLAYED = "SELECT pg_last_wal_replay_lsn()::text"
SHORT_PAGE_HEADER = 24  # bytes of a WAL page header (64-bit builds)
LONG_PAGE_HEADER = 40  # ... of the first page of a segment
FIRST_PAUSE = 0.05  # seconds before reading the primary's position again after a failure


def parse_lsn(text: str) -> int:
    """``'16/B374D848'`` as the number it stands for."""
    high, sep, low = text.partition("/")
    if not sep:
        raise ValueError(f"not an LSN: {text!r}")
    return (int(high, 16) << 32) | int(low, 16)


def wal_end(insert: int, *, block: int, segment: int) -> int:
    """The end of the last WAL record inserted, from the insert position.

    The insert position is where the next record will start: just past a page header when
    the last one ended at a page boundary, while a replica that replayed it reports the
    boundary itself. No record ends right after a header, so that position means the
    boundary."""
    if insert % segment == LONG_PAGE_HEADER:
        return insert - LONG_PAGE_HEADER
    if insert % block == SHORT_PAGE_HEADER:
        return insert - SHORT_PAGE_HEADER
    return insert


class LsnHistory:
    """The primary's recent WAL positions with the time each was seen (oldest first)."""

    def __init__(self, span: float) -> None:
        self._span = span
        self._samples: deque[tuple[float, int]] = deque()

    def add(self, at: float, lsn: int) -> None:
        self._samples.append((at, lsn))
        while self._samples and self._samples[0][0] < at - self._span:
            self._samples.popleft()

    def lag(self, replayed: int, now: float) -> float:
        """Seconds since the primary first stood past ``replayed``: 0 when it never did (in
        the span kept), at least the span when it already did at the oldest sample kept."""
        for at, lsn in self._samples:
            if lsn > replayed:
                return max(0.0, now - at)
        return 0.0


class Freshness:
    """Per identifier, the WAL position a replica must have replayed to answer it.

    ``noticed`` is called for every invalidation this process sees (a notice from any
    process, or its own commit), before the cache is asked again. The position is read once
    for every notice that arrived meanwhile; until then those identifiers are "primary only"
    (``required`` is None), and so is every identifier while the listener is not listening.
    Entries older than ``keep`` seconds, and the oldest beyond
    ``most``, are folded into the floor, which bounds the map and never lowers what is
    required; more than ``most`` noticed at once count as a notice for everything.
    """

    def __init__(
        self,
        read_position: Callable[[], Awaitable[int]],
        *,
        keep: float,
        most: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read_position = read_position
        self._keep = keep
        self._most = most
        self._clock = clock
        self._pending: set[str] = set()  # noticed, position not read yet
        self._reading: set[str] = set()  # noticed, position being read
        self._all_pending = False
        self._all_reading = False
        self._fresh: dict[str, tuple[int, float]] = {}  # handle -> (lsn, when), oldest first
        self.floor = 0  # every identifier: at least this
        # Set by the cache listener while it listens: a process that may be missing notices
        # knows nothing of recent writes, so it reads the primary only.
        self.listening = False
        self.highest = 0  # the newest position any notice required
        self._task: asyncio.Task[None] | None = None

    def noticed(self, handles: Iterable[str]) -> None:
        if not self.listening:
            return  # everything is primary-only now; the floor read on listening covers it
        for handle in handles:
            if handle == EVERYTHING:
                self._all_pending = True
            else:
                self._pending.add(handle)
        if len(self._pending) > self._most:  # a bulk load: one position for everything
            self._pending.clear()
            self._all_pending = True
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._read())

    def required(self, handle: str) -> int | None:
        """The position a replica needs to answer ``handle``; None: only the primary may."""
        if (
            not self.listening
            or self._all_pending
            or self._all_reading
            or handle in self._pending
            or handle in self._reading
        ):
            return None
        entry = self._fresh.get(handle)
        return self.floor if entry is None or entry[0] < self.floor else entry[0]

    def required_for_all(self) -> int | None:
        """The position a replica needs to answer anything (a read session)."""
        if (
            not self.listening
            or self._all_pending
            or self._all_reading
            or self._pending
            or self._reading
        ):
            return None
        return max(self.floor, self.highest)

    async def _read(self) -> None:
        pause = FIRST_PAUSE
        while self._pending or self._all_pending:
            self._reading, self._pending = self._pending, set()
            self._all_reading, self._all_pending = self._all_pending, False
            try:
                position = await self._read_position()
            except Exception as exc:  # the primary away: those stay primary-only meanwhile
                if pause == FIRST_PAUSE:  # one line per outage, not per attempt
                    log.warning("replicas.position_unread", extra={"error": str(exc)})
                self._pending |= self._reading
                self._all_pending |= self._all_reading
                self._reading, self._all_reading = set(), False
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)
                continue
            self._settle(position)

    def _settle(self, position: int) -> None:
        now = self._clock()
        for handle in self._reading:
            self._fresh.pop(handle, None)  # re-added last: the map stays oldest first
            self._fresh[handle] = (position, now)
        if self._all_reading:
            self.floor = max(self.floor, position)
        self.highest = max(self.highest, position)
        self._reading, self._all_reading = set(), False
        while self._fresh:
            handle, (lsn, at) = next(iter(self._fresh.items()))
            if at >= now - self._keep and len(self._fresh) <= self._most:
                break
            del self._fresh[handle]
            self.floor = max(self.floor, lsn)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def __len__(self) -> int:
        return len(self._fresh)


@dataclass(eq=False)
class Replica:
    """One replica: its pool (cache misses), its engine (read sessions), its last sample."""

    name: str  # host:port/database, for /readyz and the lag metric
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    store: Store
    pool: asyncpg.Pool
    outages: Outages
    replayed: int = 0  # the replay position last sampled (0: unknown)
    lag: float | None = None
    problem: str | None = "not sampled yet"  # why it is skipped; None: in use

    def down(self, reason: str) -> None:
        if self.problem is None or not self.problem.startswith("down"):
            log.warning("replicas.down", extra={"replica": self.name, "error": reason})
        self.replayed, self.lag, self.problem = 0, None, f"down: {reason}"


def replica_name(url: str) -> str:
    parsed = make_url(url)
    return f"{parsed.host or 'localhost'}:{parsed.port or 5432}/{parsed.database or ''}"


@dataclass
class Replicas:
    """The node's replicas, where each read goes, and the sampler keeping that up to date."""

    members: list[Replica]
    freshness: Freshness
    primary_position: Callable[[], Awaitable[int]]
    max_lag: float
    interval: float = 0.5
    timeout: float = 1.0
    reads: dict[str, int] = field(default_factory=lambda: {"replica": 0, "primary": 0})
    _turn: int = 0

    def __post_init__(self) -> None:
        self.history = LsnHistory(span=max(3 * self.max_lag, 10.0))

    def pick(self, required: int | None) -> Replica | None:
        """A replica in use that replayed ``required`` (in turn), else None: the primary."""
        if required is not None:
            count = len(self.members)
            for step in range(count):
                replica = self.members[(self._turn + step) % count]
                if replica.problem is None and replica.replayed >= required:
                    self._turn = (self._turn + step + 1) % count
                    self.reads["replica"] += 1
                    return replica
        self.reads["primary"] += 1
        return None

    async def sample(self) -> None:
        """Sample every ``interval`` seconds, for the life of the process (a supervised task)."""
        while True:
            await self.sample_once()
            await asyncio.sleep(self.interval)

    async def sample_once(self) -> None:
        with contextlib.suppress(Exception):  # the primary away: lags are judged on what was
            async with asyncio.timeout(self.timeout):
                self.history.add(time.monotonic(), await self.primary_position())
        await asyncio.gather(*(self._sample(r) for r in self.members))

    async def _sample(self, replica: Replica) -> None:
        try:
            async with (
                asyncio.timeout(self.timeout),
                replica.pool.acquire() as connection,
                connection.transaction(readonly=True),
            ):
                replayed = await connection.fetchval(REPLAYED)
        except TimeoutError:
            replica.down(f"no answer within {self.timeout:g} s")
            return
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            replica.down(str(exc) or type(exc).__name__)
            with contextlib.suppress(Exception):
                await replica.pool.expire_connections()
            return
        if replayed is None:
            replica.replayed, replica.lag = 0, None
            replica.problem = "not a replica (pg_last_wal_replay_lsn() is null)"
            return
        replica.replayed = parse_lsn(replayed)
        replica.lag = self.history.lag(replica.replayed, time.monotonic())
        before = replica.problem
        if replica.lag > self.max_lag:
            replica.problem = (
                f"lagging: {replica.lag:.1f} s behind the primary "
                f"(IDNODE_REPLICA_MAX_LAG={self.max_lag:g})"
            )
        else:
            replica.problem = None
        if before != replica.problem:
            log.info(
                "replicas.state", extra={"replica": replica.name, "state": self.state(replica)}
            )

    @staticmethod
    def state(replica: Replica) -> str:
        return "in use" if replica.problem is None else f"skipped: {replica.problem}"

    def report(self) -> list[dict[str, Any]]:
        """Each replica's state, for /readyz."""
        return [
            {
                "replica": r.name,
                "state": self.state(r),
                "lagSeconds": None if r.lag is None else round(r.lag, 3),
            }
            for r in self.members
        ]

    def session(self, primary: async_sessionmaker[AsyncSession]) -> AsyncSession:
        """A read session on a replica that replayed everything this process was told of,
        else on the primary."""
        replica = self.pick(self.freshness.required_for_all())
        return (replica.sessions if replica is not None else primary)()

    async def close(self) -> None:
        await self.freshness.close()
        for replica in self.members:
            await replica.pool.close()
            await replica.engine.dispose()


class ReplicatedStore:
    """The resolver's store: a replica when it may answer the identifier, else the primary.
    A replica that fails the read is skipped until its next good sample; the primary answers."""

    def __init__(self, primary: Store, replicas: Replicas) -> None:
        self._primary = primary
        self._replicas = replicas
        self._required = replicas.freshness.required

    async def fetch(self, handle: str) -> Record | None:
        replica = self._replicas.pick(self._required(handle))
        if replica is not None:
            try:
                return await replica.store.fetch(handle)
            except Exception as exc:  # anything the replica did: the primary answers instead
                replica.down(str(exc) or type(exc).__name__)
                self._replicas.reads["replica"] -= 1
                self._replicas.reads["primary"] += 1
        return await self._primary.fetch(handle)
