"""The resolver cache: answers kept as ready-to-send bytes, bounded, shared by concurrent misses.

- Keyed by normalised handle. A positive entry holds the stored record (as compact JSON, decoded
  only for filtered or privileged views) and the serialised public answer with its ETag, so a
  hit does no JSON encoding.
- Lifetime = min(value TTLs, ``max_ttl``); a TTL of 0 is never cached. Not-found answers are
  cached for ``negative_ttl`` (RFC 2308), so a flood of unknown handles costs one lookup each.
- Bounded by entry count and by bytes, least recently used evicted first. (cachetools' LRU
  bounds one measure only; with two bounds, stale retention and in-flight invalidation an
  ``OrderedDict`` is the simpler fit.)
- Expired entries stay (until evicted) for ``stale_ttl`` so an unreachable upstream can be
  answered from them (RFC 8767).
- Concurrent misses for one key share one load (single flight); an eviction during that load
  keeps its result out of the cache, so a write is never undone by a slow reader.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

import orjson

from resolver.errors import HandleNotFound
from resolver.identifier import PREFIX_RECORD_PREFIX
from resolver.record import Record, encode, record_body
from resolver.values import value_json, values_from_stored

PREFIX_RECORD = PREFIX_RECORD_PREFIX + "/"
# Bytes per entry beyond its byte strings (slots object, LRU link, key, etag), as measured by
# loadtests/bench_cache_memory.py; keeps the byte bound close to resident memory.
ENTRY_OVERHEAD = 380


@dataclass(slots=True)
class Entry:
    """A resolved identifier ready to answer: the full record and the public answer's bytes."""

    handle: str
    # The full record's values as JSON, or b"" when every value is public and the answer
    # below already holds them all (the common case; it halves the entry).
    stored: bytes
    body: bytes  # the public answer ({"responseCode":1,...}); b"" for a not-found entry
    etag: str
    ttl: int  # lifetime granted when loaded (seconds)
    expires: float  # monotonic deadline
    stale_until: float
    found: bool = True
    stale: bool = False  # served past its lifetime because the source was unreachable

    @property
    def size(self) -> int:
        return len(self.stored) + len(self.body) + len(self.handle) + ENTRY_OVERHEAD

    def record(self) -> Record:
        values = orjson.loads(self.stored) if self.stored else orjson.loads(self.body)["values"]
        return Record(self.handle, values_from_stored(values))

    def remaining(self, now: float) -> int:
        return max(0, int(self.expires - now))


def etag_of(body: bytes) -> str:
    """The strong ETag of an answer's bytes: the same bytes, the same tag, on every node."""
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


def make_entry(
    record: Record, *, ttl: int, now: float, stale_ttl: float, key: str | None = None
) -> Entry:
    """``key``: the cache's own key string, shared instead of a second copy of the name."""
    public = record.public()
    body = _compact(encode(record_body(public)))
    everything_public = len(public.values) == len(record.values)
    return Entry(
        handle=key if key == record.handle else record.handle,
        stored=b""
        if everything_public
        else _compact(orjson.dumps([value_json(v) for v in record.values])),
        body=body,
        etag=etag_of(body),
        ttl=ttl,
        expires=now + ttl,
        stale_until=now + ttl + stale_ttl,
    )


def _compact(data: bytes) -> bytes:
    """An exact-size copy: orjson's result keeps its whole 4 KiB working buffer allocated,
    which for a small answer kept in the cache is ten times its size."""
    return memoryview(data).tobytes()


class _Abandoned(Exception):
    """The caller running a shared load went away before it finished."""


@dataclass(slots=True)
class _Flight:
    future: asyncio.Future[Entry]
    invalidated: bool = False

    def settle(self, *, entry: Entry | None = None, exception: BaseException | None = None) -> None:
        if exception is not None:
            self.future.set_exception(exception)
            self.future.exception()  # nobody may be waiting; the error must not warn later
        else:
            assert entry is not None
            self.future.set_result(entry)


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    negative_hits: int = 0
    evictions: int = 0
    stale_served: int = 0
    loads: int = 0
    entries: int = 0
    bytes: int = 0


class ResolverCache:
    """Bounded LRU of :class:`Entry` with TTLs, negative entries, stale retention, single flight."""

    def __init__(
        self,
        *,
        max_entries: int = 100_000,
        max_bytes: int = 256 * 1024 * 1024,
        max_ttl: int = 86400,
        negative_ttl: int = 30,
        stale_ttl: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.max_ttl = max_ttl
        self.negative_ttl = negative_ttl
        self.stale_ttl = stale_ttl
        self.clock = clock
        self.enabled = max_entries > 0 and max_bytes > 0
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._bytes = 0
        self._flights: dict[str, _Flight] = {}
        self.stats = CacheStats()
        self.clears = 0  # how often everything was forgotten (derived answers reload then)

    # --- the hot path ---

    def fresh(self, key: str) -> Entry | None:
        """The entry if it is still within its lifetime (a hit), else None (a miss)."""
        entry = self._entries.get(key)
        if entry is None or entry.expires <= self.clock():
            return None
        self._entries.move_to_end(key)
        if entry.found:
            self.stats.hits += 1
        else:
            self.stats.negative_hits += 1
        return entry

    # --- loading ---

    async def get_or_load(self, key: str, load: Callable[[], Awaitable[Record | None]]) -> Entry:
        """A fresh entry, or the result of ``load`` shared with every concurrent caller.

        ``load`` returns None when the identifier does not exist; that answer is cached
        briefly and raised as :class:`HandleNotFound`.
        """
        entry = self.fresh(key)
        if entry is None:
            return await self.load_missing(key, load)
        if not entry.found:
            raise HandleNotFound.of(key)
        return entry

    async def load_missing(self, key: str, load: Callable[[], Awaitable[Record | None]]) -> Entry:
        """:meth:`get_or_load` for a caller that has just found no fresh entry (the engine):
        join the load under way, or run ``load``. The first caller runs the load itself (no
        extra task on the common path); should it be cancelled (a client hanging up), the
        callers waiting on it start over instead of failing with it.
        """
        while True:
            flight = self._flights.get(key)
            if flight is None:
                entry = await self._load(key, load)
            else:
                try:
                    entry = await asyncio.shield(flight.future)
                except _Abandoned:
                    fresh = self.fresh(key)
                    if fresh is None:
                        continue
                    entry = fresh
            if not entry.found:
                raise HandleNotFound.of(key)
            return entry

    def loading(self, key: str) -> bool:
        """Whether a load of ``key`` is under way in this process."""
        return key in self._flights

    async def load_alone(self, key: str, load: Callable[[], Awaitable[Record | None]]) -> Entry:
        """The result of ``load``, neither shared with nor waiting for a load under way (and
        not stored: that load will store its own)."""
        entry = self._entry_for(key, await load())
        if not entry.found:
            raise HandleNotFound.of(key)
        return entry

    async def _load(self, key: str, load: Callable[[], Awaitable[Record | None]]) -> Entry:
        self.stats.misses += 1
        self.stats.loads += 1
        flight = _Flight(asyncio.get_running_loop().create_future())
        self._flights[key] = flight
        try:
            entry = self._entry_for(key, await load())
            if not flight.invalidated:
                self._store(key, entry)
        except asyncio.CancelledError:
            flight.settle(exception=_Abandoned())
            raise
        except BaseException as exc:
            flight.settle(exception=exc)
            raise
        else:
            flight.settle(entry=entry)
            return entry
        finally:
            if self._flights.get(key) is flight:
                del self._flights[key]

    def _entry_for(self, key: str, record: Record | None) -> Entry:
        now = self.clock()
        if record is None:
            return Entry(
                handle=key,
                stored=b"",
                body=b"",
                etag="",
                ttl=self.negative_ttl,
                expires=now + self.negative_ttl,
                stale_until=0.0,
                found=False,
            )
        ttl = min(record.min_ttl() or 0, self.max_ttl) if record.values else self.max_ttl
        return make_entry(record, ttl=ttl, now=now, stale_ttl=self.stale_ttl, key=key)

    def _store(self, key: str, entry: Entry) -> None:
        if not self.enabled or entry.ttl <= 0 or entry.size > self.max_bytes:
            return
        self._drop(key)
        self._entries[key] = entry
        self._bytes += entry.size
        while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
            _, oldest = self._entries.popitem(last=False)
            self._bytes -= oldest.size
            self.stats.evictions += 1
        self._sync_stats()

    # --- serve stale ---

    def stale(self, key: str) -> Entry | None:
        """An expired positive entry still inside its stale window, marked as stale."""
        entry = self._entries.get(key)
        if entry is None or not entry.found or entry.stale_until <= self.clock():
            return None
        self.stats.stale_served += 1
        return replace(entry, stale=True)

    # --- invalidation ---

    def evict(self, key: str) -> None:
        """Forget ``key`` now, and keep a load already under way from caching its result.

        A prefix record (``0.NA/<prefix>``) decides where that prefix is resolved, so
        changing it also forgets every answer cached under the prefix.
        """
        self._evict_one(key)
        if key.startswith(PREFIX_RECORD):
            under = key[len(PREFIX_RECORD) :] + "/"
            for cached in [k for k in (*self._entries, *self._flights) if k.startswith(under)]:
                self._evict_one(cached)
        self._sync_stats()

    def _evict_one(self, key: str) -> None:
        # A read that starts after this must not join a load that started before it.
        flight = self._flights.pop(key, None)
        if flight is not None:
            flight.invalidated = True
        self._drop(key)

    def clear(self) -> None:
        self.clears += 1
        for flight in self._flights.values():
            flight.invalidated = True
        self._flights.clear()
        self._entries.clear()
        self._bytes = 0
        self._sync_stats()

    def _drop(self, key: str) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= old.size

    def _sync_stats(self) -> None:
        self.stats.entries = len(self._entries)
        self.stats.bytes = self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries
