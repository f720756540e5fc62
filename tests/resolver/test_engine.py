"""The resolution engine: who answers for an identifier (the store, an enterprise node, the
upstream), and how it uses the cache. The store and remote nodes are test doubles of the two
interfaces the engine takes; the cache is the real one on a fake clock."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from resolver.cache import ResolverCache
from resolver.engine import Resolver, within
from resolver.errors import HandleNotFound, NotResponsible
from resolver.identifier import parse_handle
from resolver.record import Record
from resolver.upstream import UpstreamUnavailable
from tests.resolver.doubles import FakeClock, hv, settle

KEY = "88.999.1/MILK-1"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def cache_with(clock: FakeClock, **options: Any) -> ResolverCache:
    return ResolverCache(clock=clock, **options)


# --- the engine over a store ---


class MemoryStore:
    """A test double of the store interface: records by normalised handle text."""

    def __init__(self, *records: Record) -> None:
        self.records = {r.handle: r for r in records}
        self.asked: list[str] = []

    async def fetch(self, handle: str) -> Record | None:
        self.asked.append(handle)
        return self.records.get(handle)


MILK = Record("88.999.1/MILK-1", (hv(1, "URL", "https://example.com/milk/1"),))
ABC = Record("88.999.ABC/x", (hv(1, "URL", "https://example.com/abc"),))
NODE_PREFIX_RECORD = Record("0.NA/88.999", (hv(100, "HS_ADMIN"),))
ENTERPRISE_PREFIX_RECORD = Record("0.NA/88.999.1", (hv(100, "HS_ADMIN"),))


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore(MILK, ABC, NODE_PREFIX_RECORD, ENTERPRISE_PREFIX_RECORD)


@pytest.fixture
def resolver(store: MemoryStore) -> Resolver:
    return Resolver(store, node_prefix="88.999")


async def test_local_handle_is_looked_up(resolver: Resolver, store: MemoryStore) -> None:
    assert (await resolver.resolve(parse_handle("88.999.1/MILK-1"))).record() == MILK
    assert store.asked == ["88.999.1/MILK-1"]


async def test_lookup_uses_the_normalised_handle(resolver: Resolver, store: MemoryStore) -> None:
    assert (await resolver.resolve(parse_handle("88.999.abc/x"))).record() == ABC
    assert store.asked == ["88.999.ABC/x"]


async def test_suffix_case_matters(resolver: Resolver) -> None:
    with pytest.raises(HandleNotFound):
        await resolver.resolve(parse_handle("88.999.1/milk-1"))


async def test_missing_local_handle_is_not_found(resolver: Resolver) -> None:
    with pytest.raises(HandleNotFound) as caught:
        await resolver.resolve(parse_handle("88.999.1/NOPE"))
    assert caught.value.response_code == 100
    assert "88.999.1/NOPE" in caught.value.message


@pytest.mark.parametrize(
    "text",
    [
        "88.998.1/MILK-1",
        "88.9990/X",  # shares characters with the node prefix but is not under it
        "88.99/X",
        "88/X",  # the parent of the node prefix
        "86.1/X",
        "0.NA/88.9990",
        "0.NA/88",
        "0.NA/86.1",
        "0.NA/0.NA",
    ],
)
async def test_handles_outside_the_node_prefix_are_not_this_nodes(
    resolver: Resolver, store: MemoryStore, text: str
) -> None:
    handle = parse_handle(text)
    assert not resolver.is_local(handle)
    with pytest.raises(NotResponsible) as caught:
        await resolver.resolve(handle)
    assert caught.value.response_code == 301
    assert "88.999" in caught.value.message
    assert str(handle) in caught.value.message
    assert store.asked == []  # never looked up locally


@pytest.mark.parametrize(
    "text",
    ["88.999/X", "88.999.1/X", "88.999.1.2/X", "0.NA/88.999", "0.NA/88.999.1", "0.na/88.999.7"],
)
def test_handles_under_the_node_prefix_are_local(resolver: Resolver, text: str) -> None:
    assert resolver.is_local(parse_handle(text))


async def test_prefix_records_under_the_node_are_resolved_locally(resolver: Resolver) -> None:
    assert (
        await resolver.resolve(parse_handle("0.NA/88.999.1"))
    ).record() == ENTERPRISE_PREFIX_RECORD
    assert (await resolver.resolve(parse_handle("0.na/88.999"))).record() == NODE_PREFIX_RECORD
    with pytest.raises(HandleNotFound):
        await resolver.resolve(parse_handle("0.NA/88.999.2"))


async def test_node_prefix_with_letters(store: MemoryStore) -> None:
    resolver = Resolver(store, node_prefix="88.999.ABC")
    assert (await resolver.resolve(parse_handle("88.999.abc/x"))).record() == ABC
    with pytest.raises(NotResponsible):
        await resolver.resolve(parse_handle("88.999.1/MILK-1"))


@pytest.mark.parametrize(
    ("prefix", "parent", "expected"),
    [
        ("88.999", "88.999", True),
        ("88.999.1", "88.999", True),
        ("88.999.1.2", "88.999", True),
        ("88.9990", "88.999", False),
        ("88.99", "88.999", False),
        ("88", "88.999", False),
    ],
)
def test_within(prefix: str, parent: str, expected: bool) -> None:
    assert within(prefix, parent) is expected


# --- the engine through its cache ---


class CountingStore:
    """A test double of the store interface that counts fetches per handle."""

    def __init__(self, *records: Record) -> None:
        self.records = {r.handle: r for r in records}
        self.fetches: Counter[str] = Counter()

    async def fetch(self, handle: str) -> Record | None:
        self.fetches[handle] += 1
        return self.records.get(handle)


class FlakyRemote:
    """A test double of the Handle REST client: answers, then becomes unreachable."""

    def __init__(self, rec: Record) -> None:
        self.rec = rec
        self.up = True
        self.calls = 0

    async def resolve(
        self, base_url: str, handle: str, *, hops: int, via: tuple[str, ...]
    ) -> Record | None:
        self.calls += 1
        if not self.up:
            raise UpstreamUnavailable(f"{base_url} is unreachable")
        return self.rec


CACHED_MILK = Record(KEY, (hv(1, "URL", "https://example.com/milk/1", ttl=3600),))
CACHED_PREFIX_RECORD = Record("0.NA/88.999.1", (hv(100, "HS_ADMIN", "admin", ttl=3600),))


def cached_resolver(store: CountingStore, clock: FakeClock, **options: Any) -> Resolver:
    return Resolver(store, node_prefix="88.999", cache=cache_with(clock, **options))


async def test_two_resolves_cost_one_fetch(clock: FakeClock) -> None:
    store = CountingStore(CACHED_MILK, CACHED_PREFIX_RECORD)
    resolver = cached_resolver(store, clock)
    first = await resolver.resolve(parse_handle(KEY))
    second = await resolver.resolve(parse_handle("88.999.1/MILK-1"))
    assert second is first
    assert first.record() == CACHED_MILK
    assert store.fetches == Counter({KEY: 1})
    assert resolver.cache.stats.hits == 1


async def test_resolves_after_expiry_fetch_again(clock: FakeClock) -> None:
    store = CountingStore(CACHED_MILK)
    resolver = cached_resolver(store, clock)
    await resolver.resolve(parse_handle(KEY))
    clock.at(3599)
    await resolver.resolve(parse_handle(KEY))
    assert store.fetches[KEY] == 1
    clock.at(3600)
    await resolver.resolve(parse_handle(KEY))
    assert store.fetches[KEY] == 2


@pytest.mark.parametrize("with_prefix_record", [True, False])
async def test_unknown_handle_flood_costs_one_fetch(
    clock: FakeClock, with_prefix_record: bool
) -> None:
    store = (
        CountingStore(CACHED_MILK, CACHED_PREFIX_RECORD)
        if with_prefix_record
        else CountingStore(CACHED_MILK)
    )
    resolver = cached_resolver(store, clock)
    for _ in range(5):
        with pytest.raises(HandleNotFound):
            await resolver.resolve(parse_handle("88.999.1/NOPE"))
    # Exactly two fetches, once each: the first resolve finds no 88.999.1/NOPE in the store,
    # and since it is not itself a 0.NA record, the resolver asks whether prefix 88.999.1 is
    # delegated (an HS_SITE value in 0.NA/88.999.1), a resolve that goes through the cache
    # and fetches that record once. It has no HS_SITE (or does not exist, which is cached as
    # not found too), so the handle is cached as not found; the next four resolves are
    # negative hits that touch neither record.
    assert store.fetches == Counter({"88.999.1/NOPE": 1, "0.NA/88.999.1": 1})
    assert resolver.cache.stats.negative_hits == 4
    # The prefix record is cached as well: another unknown handle under it costs one fetch.
    with pytest.raises(HandleNotFound):
        await resolver.resolve(parse_handle("88.999.1/NOPE-2"))
    assert store.fetches == Counter({"88.999.1/NOPE": 1, "88.999.1/NOPE-2": 1, "0.NA/88.999.1": 1})


async def test_unknown_handle_is_fetched_again_after_negative_ttl(clock: FakeClock) -> None:
    store = CountingStore(CACHED_PREFIX_RECORD)
    resolver = cached_resolver(store, clock, negative_ttl=30)
    with pytest.raises(HandleNotFound):
        await resolver.resolve(parse_handle("88.999.1/NOPE"))
    clock.at(30)
    with pytest.raises(HandleNotFound):
        await resolver.resolve(parse_handle("88.999.1/NOPE"))
    # The prefix record (TTL 3600) is still fresh, so only the handle is fetched again.
    assert store.fetches == Counter({"88.999.1/NOPE": 2, "0.NA/88.999.1": 1})


async def test_evict_then_resolve_fetches_again(clock: FakeClock) -> None:
    store = CountingStore(CACHED_MILK)
    resolver = cached_resolver(store, clock)
    await resolver.resolve(parse_handle(KEY))
    updated = Record(KEY, (hv(1, "URL", "https://example.com/milk/1-v2", ttl=3600),))
    store.records[KEY] = updated
    resolver.cache.evict(KEY)
    entry = await resolver.resolve(parse_handle(KEY))
    assert store.fetches[KEY] == 2
    assert entry.record() == updated
    await resolver.resolve(parse_handle(KEY))
    assert store.fetches[KEY] == 2


async def test_ttl_zero_record_is_fetched_on_every_resolve(clock: FakeClock) -> None:
    store = CountingStore(Record(KEY, (hv(1, "URL", "https://e.x", ttl=0),)))
    resolver = cached_resolver(store, clock)
    for _ in range(3):
        await resolver.resolve(parse_handle(KEY))
    assert store.fetches[KEY] == 3


async def test_concurrent_resolves_cost_one_fetch(clock: FakeClock) -> None:
    gate = asyncio.Event()

    class SlowStore(CountingStore):
        async def fetch(self, handle: str) -> Record | None:
            self.fetches[handle] += 1
            await gate.wait()
            return self.records.get(handle)

    store = SlowStore(CACHED_MILK)
    resolver = cached_resolver(store, clock)
    tasks = [asyncio.create_task(resolver.resolve(parse_handle(KEY))) for _ in range(20)]
    await settle()
    gate.set()
    entries = await asyncio.gather(*tasks)
    assert store.fetches == Counter({KEY: 1})
    assert all(e is entries[0] for e in entries)


async def test_unreachable_upstream_is_answered_from_stale(clock: FakeClock) -> None:
    foreign = Record("21.T11148/abc", (hv(1, "URL", "https://example.org", ttl=100),))
    remote = FlakyRemote(foreign)
    resolver = Resolver(
        CountingStore(),
        node_prefix="88.999",
        cache=cache_with(clock, stale_ttl=60),
        remote=remote,  # type: ignore[arg-type]
        upstream_url="https://upstream.example",
    )
    fresh = await resolver.resolve(parse_handle("21.T11148/abc"))
    assert not fresh.stale
    remote.up = False
    clock.at(130)
    stale = await resolver.resolve(parse_handle("21.T11148/abc"))
    assert stale.stale
    assert stale.body == fresh.body
    assert remote.calls == 2
    clock.at(160)
    with pytest.raises(UpstreamUnavailable):
        await resolver.resolve(parse_handle("21.T11148/abc"))
