"""The resolver cache (TTLs, bounds, LRU, negative entries, single flight, stale) and its use.

Time is a fake clock handed to the cache; nothing here sleeps. ``settle()`` only lets the
event loop run the tasks that are ready, so every concurrent caller reaches its ``await``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from resolver.cache import ENTRY_OVERHEAD, Entry, ResolverCache, make_entry
from resolver.errors import HandleNotFound
from resolver.record import Record, encode, record_body
from tests.resolver.doubles import T0, FakeClock, hv, settle

KEY = "88.999.1/MILK-1"


class CountingLoader:
    """A loader for ``get_or_load`` that counts its calls and returns what it is given."""

    def __init__(self, result: Record | None) -> None:
        self.result = result
        self.calls = 0

    async def __call__(self) -> Record | None:
        self.calls += 1
        return self.result


class GatedLoader:
    """A slow loader: every call waits for ``gate`` before answering (or raising)."""

    def __init__(self, *results: Record | BaseException | None) -> None:
        self.results = list(results)
        self.gate = asyncio.Event()
        self.calls = 0

    async def __call__(self) -> Record | None:
        result = self.results[min(self.calls, len(self.results) - 1)]
        self.calls += 1
        await self.gate.wait()
        if isinstance(result, BaseException):
            raise result
        return result


def record(handle: str = KEY, *ttls: int, data: str = "https://example.com/x") -> Record:
    """A record with one URL value per TTL given (one value of the default TTL if none)."""
    if not ttls:
        return Record(handle, (hv(1, "URL", data),))
    return Record(handle, tuple(hv(i, "URL", data, ttl=ttl) for i, ttl in enumerate(ttls, 1)))


def cache_with(clock: FakeClock, **options: Any) -> ResolverCache:
    return ResolverCache(clock=clock, **options)


async def load(cache: ResolverCache, key: str, rec: Record | None) -> Entry:
    return await cache.get_or_load(key, CountingLoader(rec))


def size_of(rec: Record) -> int:
    return make_entry(rec, ttl=60, now=T0, stale_ttl=0).size


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# --- TTL expiry ---


async def test_entry_lives_for_the_smallest_value_ttl(clock: FakeClock) -> None:
    cache = cache_with(clock)
    entry = await load(cache, KEY, record(KEY, 3600, 600, 7200))
    assert entry.ttl == 600
    assert entry.expires == T0 + 600
    clock.at(599.999)
    assert cache.fresh(KEY) is entry
    assert entry.remaining(clock()) == 0  # whole seconds left, rounded down
    clock.at(599)
    assert entry.remaining(clock()) == 1
    clock.at(600)  # the deadline itself is already expired
    assert cache.fresh(KEY) is None
    clock.at(10_000)
    assert cache.fresh(KEY) is None
    assert entry.remaining(clock()) == 0


async def test_expired_entry_is_loaded_again(clock: FakeClock) -> None:
    cache = cache_with(clock)
    loader = CountingLoader(record(KEY, 60))
    first = await cache.get_or_load(KEY, loader)
    clock.at(59)
    assert await cache.get_or_load(KEY, loader) is first
    assert loader.calls == 1
    clock.at(60)
    second = await cache.get_or_load(KEY, loader)
    assert loader.calls == 2
    assert second is not first
    assert second.expires == T0 + 60 + 60
    assert cache.stats.hits == 1
    assert cache.stats.misses == 2
    assert cache.stats.loads == 2


async def test_max_ttl_caps_long_ttls(clock: FakeClock) -> None:
    cache = cache_with(clock, max_ttl=300)
    entry = await load(cache, KEY, record(KEY, 86400, 3600))
    assert entry.ttl == 300
    clock.at(299.5)
    assert cache.fresh(KEY) is entry
    clock.at(300)
    assert cache.fresh(KEY) is None


async def test_ttl_shorter_than_max_ttl_is_kept(clock: FakeClock) -> None:
    cache = cache_with(clock, max_ttl=300)
    entry = await load(cache, KEY, record(KEY, 120))
    assert entry.ttl == 120


async def test_record_with_a_ttl_zero_value_is_never_stored(clock: FakeClock) -> None:
    cache = cache_with(clock)
    loader = CountingLoader(record(KEY, 3600, 0))
    for expected_calls in range(1, 4):
        entry = await cache.get_or_load(KEY, loader)
        assert entry.record() == loader.result  # still answered, just not kept
        assert loader.calls == expected_calls
        assert KEY not in cache
        assert cache.fresh(KEY) is None
    assert len(cache) == 0
    assert cache.stats.entries == 0
    assert cache.stats.bytes == 0


# --- byte bound ---


async def test_byte_bound_evicts_least_recently_used(clock: FakeClock) -> None:
    recs = {k: record(k, 3600) for k in ("88.999.1/A", "88.999.1/B", "88.999.1/C")}
    size = size_of(recs["88.999.1/A"])
    assert {size_of(r) for r in recs.values()} == {size}  # all the same size
    cache = cache_with(clock, max_bytes=2 * size + size // 2)  # room for two
    entries = {k: await load(cache, k, r) for k, r in recs.items()}
    assert "88.999.1/A" not in cache  # the oldest went
    assert "88.999.1/B" in cache
    assert "88.999.1/C" in cache
    assert cache.stats.evictions == 1
    assert cache.stats.entries == 2 == len(cache)
    assert cache.stats.bytes == entries["88.999.1/B"].size + entries["88.999.1/C"].size
    assert cache.stats.bytes <= cache.max_bytes


async def test_a_large_entry_evicts_as_many_as_needed(clock: FakeClock) -> None:
    small = [record(f"88.999.1/{n}", 3600) for n in "ABCD"]
    size = size_of(small[0])
    cache = cache_with(clock, max_bytes=4 * size)
    entries = [await load(cache, r.handle, r) for r in small]
    assert cache.stats.bytes == 4 * size
    assert cache.stats.evictions == 0
    # Between one and two small entries in size (its value is counted in both the stored
    # record and the body): to make room, two small entries must go, not one.
    big = record("88.999.1/E", 3600, data="y" * (size // 2))
    assert size < size_of(big) <= 2 * size
    big_entry = await load(cache, big.handle, big)
    assert "88.999.1/A" not in cache
    assert "88.999.1/B" not in cache
    assert "88.999.1/C" in cache
    assert "88.999.1/D" in cache
    assert big.handle in cache
    assert cache.stats.evictions == 2
    assert cache.stats.entries == 3
    assert cache.stats.bytes == entries[2].size + entries[3].size + big_entry.size
    assert cache.stats.bytes <= cache.max_bytes


async def test_entry_larger_than_max_bytes_is_not_stored(clock: FakeClock) -> None:
    small = record("88.999.1/A", 3600)
    cache = cache_with(clock, max_bytes=3 * size_of(small))
    kept = await load(cache, small.handle, small)
    huge = record("88.999.1/HUGE", 3600, data="z" * (4 * size_of(small)))
    assert size_of(huge) > cache.max_bytes
    loader = CountingLoader(huge)
    entry = await cache.get_or_load(huge.handle, loader)
    assert entry.record() == huge  # answered all the same
    assert huge.handle not in cache
    assert small.handle in cache  # and nothing was evicted to make room for it
    assert cache.stats.evictions == 0
    assert cache.stats.entries == 1
    assert cache.stats.bytes == kept.size
    await cache.get_or_load(huge.handle, loader)
    assert loader.calls == 2


async def test_entry_exactly_max_bytes_is_stored(clock: FakeClock) -> None:
    rec = record(KEY, 3600)
    cache = cache_with(clock, max_bytes=size_of(rec))
    entry = await load(cache, KEY, rec)
    assert KEY in cache
    assert cache.stats.bytes == entry.size == cache.max_bytes


async def test_stats_track_entries_and_bytes(clock: FakeClock) -> None:
    cache = cache_with(clock)
    entries: dict[str, Entry] = {}
    for n in range(5):
        key = f"88.999.1/K{n}"
        entries[key] = await load(cache, key, record(key, 3600, data="v" * (10 * n)))
    with pytest.raises(HandleNotFound):
        await load(cache, "88.999.1/NONE", None)
    negative_size = len("88.999.1/NONE") + ENTRY_OVERHEAD
    assert cache.stats.entries == 6 == len(cache)
    assert cache.stats.bytes == sum(e.size for e in entries.values()) + negative_size
    for entry in entries.values():
        assert (
            entry.size == len(entry.stored) + len(entry.body) + len(entry.handle) + ENTRY_OVERHEAD
        )

    cache.evict("88.999.1/K2")
    del entries["88.999.1/K2"]
    assert cache.stats.entries == 5
    assert cache.stats.bytes == sum(e.size for e in entries.values()) + negative_size

    # Replacing an entry counts its bytes once, and is not an eviction.
    clock.advance(3600)
    replaced = await load(cache, "88.999.1/K1", record("88.999.1/K1", 3600, data="w" * 500))
    entries["88.999.1/K1"] = replaced
    assert cache.stats.entries == 5
    assert cache.stats.bytes == sum(e.size for e in entries.values()) + negative_size
    assert cache.stats.evictions == 0

    cache.clear()
    assert cache.stats.entries == 0
    assert cache.stats.bytes == 0
    assert len(cache) == 0


# --- entry-count bound and LRU order ---


async def test_entry_bound_evicts_the_oldest(clock: FakeClock) -> None:
    cache = cache_with(clock, max_entries=2)
    for key in ("88.999.1/A", "88.999.1/B", "88.999.1/C"):
        await load(cache, key, record(key, 3600))
    assert "88.999.1/A" not in cache
    assert "88.999.1/B" in cache
    assert "88.999.1/C" in cache
    assert cache.stats.evictions == 1
    assert cache.stats.entries == 2


async def test_reading_an_entry_makes_it_recent(clock: FakeClock) -> None:
    cache = cache_with(clock, max_entries=2)
    await load(cache, "88.999.1/A", record("88.999.1/A", 3600))
    await load(cache, "88.999.1/B", record("88.999.1/B", 3600))
    assert cache.fresh("88.999.1/A") is not None  # A is now the most recent
    await load(cache, "88.999.1/C", record("88.999.1/C", 3600))
    assert "88.999.1/A" in cache
    assert "88.999.1/B" not in cache  # B, untouched, went first
    assert "88.999.1/C" in cache
    assert cache.stats.evictions == 1
    # Now C was written after A was read: A is the oldest.
    await load(cache, "88.999.1/D", record("88.999.1/D", 3600))
    assert "88.999.1/A" not in cache
    assert "88.999.1/C" in cache
    assert "88.999.1/D" in cache
    assert cache.stats.evictions == 2


async def test_a_hit_through_get_or_load_makes_it_recent(clock: FakeClock) -> None:
    cache = cache_with(clock, max_entries=2)
    loader_a = CountingLoader(record("88.999.1/A", 3600))
    await cache.get_or_load("88.999.1/A", loader_a)
    await load(cache, "88.999.1/B", record("88.999.1/B", 3600))
    await cache.get_or_load("88.999.1/A", loader_a)
    assert loader_a.calls == 1
    await load(cache, "88.999.1/C", record("88.999.1/C", 3600))
    assert "88.999.1/A" in cache
    assert "88.999.1/B" not in cache


async def test_disabled_cache_stores_nothing(clock: FakeClock) -> None:
    for cache in (cache_with(clock, max_entries=0), cache_with(clock, max_bytes=0)):
        assert not cache.enabled
        loader = CountingLoader(record(KEY, 3600))
        await cache.get_or_load(KEY, loader)
        await cache.get_or_load(KEY, loader)
        assert loader.calls == 2
        assert len(cache) == 0


# --- negative caching ---


async def test_not_found_is_cached_for_negative_ttl(clock: FakeClock) -> None:
    cache = cache_with(clock, negative_ttl=30)
    loader = CountingLoader(None)
    with pytest.raises(HandleNotFound) as caught:
        await cache.get_or_load(KEY, loader)
    assert caught.value.response_code == 100
    assert KEY in caught.value.message
    assert loader.calls == 1
    assert KEY in cache
    negative = cache.fresh(KEY)
    assert negative is not None
    assert not negative.found
    assert negative.body == b""
    assert cache.stats.negative_hits == 1
    assert cache.stats.hits == 0

    for n in range(2, 5):
        clock.at(29.9)
        with pytest.raises(HandleNotFound):
            await cache.get_or_load(KEY, loader)
        assert loader.calls == 1
        assert cache.stats.negative_hits == n
    assert cache.stats.hits == 0

    clock.at(30)
    with pytest.raises(HandleNotFound):
        await cache.get_or_load(KEY, loader)
    assert loader.calls == 2


async def test_negative_entry_is_replaced_once_the_handle_exists(clock: FakeClock) -> None:
    cache = cache_with(clock, negative_ttl=30)
    loader = CountingLoader(None)
    with pytest.raises(HandleNotFound):
        await cache.get_or_load(KEY, loader)
    cache.evict(KEY)  # a write creates the handle
    loader.result = record(KEY, 3600)
    entry = await cache.get_or_load(KEY, loader)
    assert entry.found
    assert entry.record() == loader.result


async def test_negative_ttl_zero_caches_nothing(clock: FakeClock) -> None:
    cache = cache_with(clock, negative_ttl=0)
    loader = CountingLoader(None)
    for n in range(1, 4):
        with pytest.raises(HandleNotFound):
            await cache.get_or_load(KEY, loader)
        assert loader.calls == n
    assert KEY not in cache
    assert cache.stats.entries == 0
    assert cache.stats.negative_hits == 0


# --- single flight ---


async def test_concurrent_misses_share_one_load(clock: FakeClock) -> None:
    cache = cache_with(clock)
    loader = GatedLoader(record(KEY, 3600))
    tasks = [asyncio.create_task(cache.get_or_load(KEY, loader)) for _ in range(50)]
    await settle()
    assert loader.calls == 1
    assert not any(t.done() for t in tasks)
    loader.gate.set()
    entries = await asyncio.gather(*tasks)
    assert loader.calls == 1
    assert all(e is entries[0] for e in entries)
    assert entries[0].record() == loader.results[0]
    assert cache.fresh(KEY) is entries[0]
    assert cache.stats.loads == 1
    assert cache.stats.misses == 1


async def test_concurrent_not_found_shares_one_load(clock: FakeClock) -> None:
    cache = cache_with(clock)
    loader = GatedLoader(None)
    tasks = [asyncio.create_task(cache.get_or_load(KEY, loader)) for _ in range(50)]
    await settle()
    loader.gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert loader.calls == 1
    assert all(isinstance(r, HandleNotFound) for r in results)


async def test_a_failed_load_fails_every_caller_and_caches_nothing(clock: FakeClock) -> None:
    cache = cache_with(clock)
    boom = RuntimeError("store is down")
    loader = GatedLoader(boom, record(KEY, 3600))
    tasks = [asyncio.create_task(cache.get_or_load(KEY, loader)) for _ in range(50)]
    await settle()
    loader.gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert loader.calls == 1
    assert all(r is boom for r in results)
    assert KEY not in cache
    assert cache.stats.entries == 0
    # The next caller tries again (and this time succeeds).
    entry = await cache.get_or_load(KEY, loader)
    assert loader.calls == 2
    assert entry.record() == record(KEY, 3600)


async def test_cancelling_a_waiter_does_not_cancel_the_load(clock: FakeClock) -> None:
    cache = cache_with(clock)
    loader = GatedLoader(record(KEY, 3600))
    tasks = [asyncio.create_task(cache.get_or_load(KEY, loader)) for _ in range(50)]
    await settle()
    tasks[7].cancel()  # one that joined the first caller's load
    await settle()
    assert tasks[7].cancelled()
    loader.gate.set()
    others = [t for i, t in enumerate(tasks) if i != 7]
    entries = await asyncio.gather(*others)
    assert loader.calls == 1
    assert all(e is entries[0] for e in entries)
    assert cache.fresh(KEY) is entries[0]


async def test_cancelling_the_first_caller_does_not_cancel_the_load(clock: FakeClock) -> None:
    # The first caller runs the load (e.g. for an HTTP client that then hung up); the
    # requests that joined its load must still get their answer: one of them loads again.
    cache = cache_with(clock)
    loader = GatedLoader(record(KEY, 3600))
    tasks = [asyncio.create_task(cache.get_or_load(KEY, loader)) for _ in range(50)]
    await settle()
    tasks[0].cancel()
    await settle()
    loader.gate.set()
    results = await asyncio.gather(*tasks[1:], return_exceptions=True)
    assert tasks[0].cancelled()
    assert [type(r).__name__ for r in results if not isinstance(r, Entry)] == []
    assert loader.calls == 2
    assert all(r is results[0] for r in results)


# --- eviction during a load ---


async def test_evict_during_a_load_keeps_its_result_out(clock: FakeClock) -> None:
    cache = cache_with(clock)
    old, new = record(KEY, 3600, data="old"), record(KEY, 3600, data="new")
    loader = GatedLoader(old, new)
    task = asyncio.create_task(cache.get_or_load(KEY, loader))
    await settle()
    cache.evict(KEY)  # a write committed while the read was under way
    loader.gate.set()
    entry = await task
    assert entry.record() == old  # the reader that started first still gets its answer
    assert KEY not in cache
    assert cache.stats.entries == 0
    assert cache.stats.bytes == 0
    again = await cache.get_or_load(KEY, loader)
    assert loader.calls == 2
    assert again.record() == new
    assert KEY in cache


async def test_a_call_after_evict_does_not_join_the_invalidated_load(clock: FakeClock) -> None:
    # A reader arriving after the write's eviction must not be handed the answer of a load
    # that began before the write.
    cache = cache_with(clock)
    old, new = record(KEY, 3600, data="old"), record(KEY, 3600, data="new")
    slow = GatedLoader(old)
    first = asyncio.create_task(cache.get_or_load(KEY, slow))
    await settle()
    cache.evict(KEY)
    fast = CountingLoader(new)
    later = asyncio.create_task(cache.get_or_load(KEY, fast))
    await settle()
    slow.gate.set()
    assert (await first).record() == old
    assert (await later).record() == new
    assert fast.calls == 1
    cached = cache.fresh(KEY)
    assert cached is not None
    assert cached.record() == new


async def test_clear_during_loads_keeps_their_results_out(clock: FakeClock) -> None:
    cache = cache_with(clock)
    keys = ["88.999.1/A", "88.999.1/B"]
    await load(cache, "88.999.1/KEPT", record("88.999.1/KEPT", 3600))
    loaders = {k: GatedLoader(record(k, 3600)) for k in keys}
    tasks = [asyncio.create_task(cache.get_or_load(k, loaders[k])) for k in keys]
    await settle()
    cache.clear()
    assert "88.999.1/KEPT" not in cache
    for loader in loaders.values():
        loader.gate.set()
    entries = await asyncio.gather(*tasks)
    assert [e.handle for e in entries] == keys
    assert len(cache) == 0
    assert cache.stats.entries == 0
    assert cache.stats.bytes == 0
    for key in keys:
        loaders[key].gate.set()
        await cache.get_or_load(key, loaders[key])
        assert loaders[key].calls == 2
        assert key in cache


async def test_evict_of_another_key_does_not_affect_a_load(clock: FakeClock) -> None:
    cache = cache_with(clock)
    loader = GatedLoader(record(KEY, 3600))
    task = asyncio.create_task(cache.get_or_load(KEY, loader))
    await settle()
    cache.evict("88.999.1/OTHER")
    loader.gate.set()
    await task
    assert KEY in cache


# --- serve stale ---


async def test_stale_entry_is_served_inside_stale_ttl(clock: FakeClock) -> None:
    cache = cache_with(clock, stale_ttl=60)
    entry = await load(cache, KEY, record(KEY, 100))
    assert entry.stale_until == T0 + 160
    clock.at(100)
    assert cache.fresh(KEY) is None
    stale = cache.stale(KEY)
    assert stale is not None
    assert stale.stale
    assert stale.found
    assert stale.body == entry.body
    assert stale.etag == entry.etag
    assert stale.record() == entry.record()
    assert not entry.stale  # the cached entry itself is not changed
    assert cache.stats.stale_served == 1
    clock.at(159.9)
    assert cache.stale(KEY) is not None
    assert cache.stats.stale_served == 2
    clock.at(160)
    assert cache.stale(KEY) is None
    assert cache.stats.stale_served == 2


async def test_no_stale_window_by_default(clock: FakeClock) -> None:
    cache = cache_with(clock)
    await load(cache, KEY, record(KEY, 100))
    clock.at(100)
    assert cache.stale(KEY) is None
    assert cache.stale("88.999.1/NEVER-LOADED") is None


async def test_negative_entries_are_never_served_stale(clock: FakeClock) -> None:
    cache = cache_with(clock, negative_ttl=30, stale_ttl=3600)
    with pytest.raises(HandleNotFound):
        await load(cache, KEY, None)
    assert cache.stale(KEY) is None  # neither within negative_ttl
    clock.at(31)
    assert cache.stale(KEY) is None  # nor after it
    assert cache.stats.stale_served == 0


# --- the public answer ---


async def test_body_holds_only_public_values(clock: FakeClock) -> None:
    cache = cache_with(clock)
    rec = Record(
        KEY,
        (
            hv(1, "URL", "https://example.com/milk/1"),
            hv(100, "HS_ADMIN", "admin-secret", permissions="1100"),
            hv(2002, "secret", "s", permissions="0000"),
        ),
    )
    entry = await load(cache, KEY, rec)
    body = orjson.loads(entry.body)
    assert body["responseCode"] == 1
    assert body["handle"] == KEY
    assert [v["index"] for v in body["values"]] == [1]
    assert b"admin-secret" not in entry.body
    assert entry.body == encode(record_body(rec.public()))
    assert entry.record() == rec  # the full record is kept for privileged views
    assert [v.index for v in entry.record().values] == [1, 100, 2002]
    assert entry.record().first("HS_ADMIN") == rec.values[1]


async def test_etag_follows_the_body(clock: FakeClock) -> None:
    cache = cache_with(clock)
    one = await load(cache, KEY, record(KEY, 3600, data="https://example.com/1"))
    assert one.etag.startswith('"')
    assert one.etag.endswith('"')
    cache.evict(KEY)
    same = await load(cache, KEY, record(KEY, 3600, data="https://example.com/1"))
    assert same.etag == one.etag
    cache.evict(KEY)
    changed = await load(cache, KEY, record(KEY, 3600, data="https://example.com/2"))
    assert changed.body != one.body
    assert changed.etag != one.etag


def test_etag_ignores_values_outside_the_public_answer() -> None:
    public = hv(1, "URL", "https://example.com/1")
    a = Record(KEY, (public, hv(100, "HS_ADMIN", "a", permissions="1100")))
    b = Record(KEY, (public, hv(100, "HS_ADMIN", "b", permissions="1100")))
    entry_a = make_entry(a, ttl=60, now=T0, stale_ttl=0)
    entry_b = make_entry(b, ttl=60, now=T0, stale_ttl=0)
    assert entry_a.body == entry_b.body
    assert entry_a.etag == entry_b.etag
    assert entry_a.stored != entry_b.stored


async def test_changing_a_prefix_record_forgets_answers_under_that_prefix(clock: FakeClock) -> None:
    # Delegating 88.999.7 to an enterprise node must not leave its earlier "not found"
    # answers (or stale records) in place until they expire.
    cache = cache_with(clock)
    for key in ("88.999.7/A", "88.999.7/B", "88.999.70/C"):
        with pytest.raises(HandleNotFound):
            await load(cache, key, None)
    await load(cache, "0.NA/88.999.7", record("0.NA/88.999.7", 3600))
    cache.evict("0.NA/88.999.7")
    assert "88.999.7/A" not in cache
    assert "88.999.7/B" not in cache
    assert "0.NA/88.999.7" not in cache
    assert "88.999.70/C" in cache  # another prefix that merely starts alike
