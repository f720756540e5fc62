"""The resolution engine: decides who answers for an identifier and asks them, through the cache.

Order (docs/domain.md section 4): the local store for prefixes under this node's prefix;
for a local prefix whose record ``0.NA/<prefix>`` names an enterprise node (``HS_SITE``), that
node; for anything else, the configured upstream. It works over a :class:`Store` so it needs
no database library; the node passes its own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from resolver.cache import Entry, ResolverCache
from resolver.errors import HandleNotFound, NotResponsible
from resolver.identifier import PREFIX_RECORD_PREFIX, Handle
from resolver.record import Record
from resolver.stats import (
    ERROR,
    HIT,
    MISS,
    NOT_FOUND,
    REFERRAL,
    UPSTREAM,
    ResolveStats,
    perf_counter,
)
from resolver.upstream import (
    HandleRestClient,
    ResolutionLoop,
    UpstreamFailed,
    UpstreamUnavailable,
)

SITE_TYPE = "HS_SITE"


class Store(Protocol):
    """Where this node keeps the records of the prefixes it hosts."""

    async def fetch(self, handle: str) -> Record | None: ...


def within(prefix: str, parent: str) -> bool:
    """True when ``prefix`` is ``parent`` or derived from it (``88.999.1`` within ``88.999``)."""
    return prefix == parent or prefix.startswith(parent + ".")


def site_url(prefix_record: Record) -> str | None:
    """The HTTP address of the node hosting a prefix, from its ``HS_SITE`` value."""
    site = prefix_record.first(SITE_TYPE)
    if site is None:
        return None
    if isinstance(site.value, str):
        return site.value
    if isinstance(site.value, dict) and isinstance(site.value.get("url"), str):
        return str(site.value["url"])
    return None


class Resolver:
    """Resolves identifiers: local ones from the store, delegated and foreign ones remotely.

    Every :meth:`resolve` is counted in ``stats`` (when given) by how it was answered;
    :meth:`lookup` is the same without counting, for the node's own bookkeeping reads.
    """

    def __init__(
        self,
        store: Store,
        *,
        node_prefix: str,
        cache: ResolverCache | None = None,
        remote: HandleRestClient | None = None,
        upstream_url: str | None = None,
        node_id: str = "",
        max_hops: int = 8,
        stats: ResolveStats | None = None,
    ) -> None:
        self._store = store
        self._node_prefix = node_prefix
        self.cache = cache if cache is not None else ResolverCache(max_entries=0)
        self._remote = remote
        self._upstream_url = upstream_url
        self.node_id = node_id
        self._max_hops = max_hops
        self.stats = stats

    def is_local(self, handle: Handle) -> bool:
        """Whether the identifier lives under this node's prefix (including ``0.NA/`` records)."""
        if handle.prefix == PREFIX_RECORD_PREFIX:
            return within(handle.suffix, self._node_prefix)
        return within(handle.prefix, self._node_prefix)

    async def resolve(self, handle: Handle, *, hops: int = 0, via: tuple[str, ...] = ()) -> Entry:
        """The full record with its public answer; callers narrow it to what the asker may see.

        ``hops`` and ``via`` say how far a request forwarded by other nodes has come.
        """
        stats = self.stats
        if stats is None:
            return (await self._resolve(handle, hops, via))[0]
        started = perf_counter()
        try:
            entry, outcome = await self._resolve(handle, hops, via)
        except HandleNotFound:
            stats.observe(NOT_FOUND, started)
            raise
        except Exception:
            stats.observe(ERROR, started)
            raise
        stats.observe(outcome, started, handle.prefix)
        return entry

    async def lookup(self, handle: Handle) -> Entry:
        """Like :meth:`resolve`, not counted as a resolution (the node reading for itself)."""
        return (await self._resolve(handle, 0, ()))[0]

    async def _resolve(self, handle: Handle, hops: int, via: tuple[str, ...]) -> tuple[Entry, int]:
        key = str(handle)
        entry = self.cache.fresh(key)
        if entry is not None:
            if not entry.found:
                raise HandleNotFound.of(key)
            return entry, HIT
        self._check_path(hops, via)
        path = (*via, self.node_id)
        # Concurrent misses share one load; those that did not run it count as a miss.
        outcome = MISS
        load: Callable[[], Awaitable[Record | None]]
        if self.is_local(handle):

            async def load() -> Record | None:
                nonlocal outcome
                record, referred = await self._local(handle, hops, path)
                outcome = REFERRAL if referred else MISS
                return record

        elif self._upstream_url is not None and self._remote is not None:
            upstream = self._upstream_url

            async def load() -> Record | None:
                nonlocal outcome
                outcome = UPSTREAM
                return await self._ask(upstream, key, hops, path, upstream=True)

        else:
            raise NotResponsible(
                f"this node holds prefix {self._node_prefix} only and has no upstream "
                f"to resolve {handle} through"
            )
        try:
            return await self.cache.get_or_load(key, load), outcome
        except UpstreamUnavailable:
            stale = self.cache.stale(key)
            if stale is None:
                raise
            return stale, HIT

    async def _ask(
        self, site: str, key: str, hops: int, via: tuple[str, ...], *, upstream: bool
    ) -> Record | None:
        assert self._remote is not None
        stats = self.stats
        try:
            record = await self._remote.resolve(site, key, hops=hops, via=via)
        except (UpstreamUnavailable, UpstreamFailed):
            if stats is not None:
                stats.upstream_errors += 1
                if upstream:
                    stats.upstream_ok = False
            raise
        if stats is not None and upstream:
            stats.upstream_ok = True
        return record

    def _check_path(self, hops: int, via: tuple[str, ...]) -> None:
        if self.node_id and self.node_id in via:
            raise ResolutionLoop(
                "resolution loop: the request came back to a node it passed "
                f"({' -> '.join((*via, self.node_id))})"
            )
        if hops >= self._max_hops:
            raise ResolutionLoop(
                f"gave up after {hops} hops between nodes (limit {self._max_hops})"
            )

    async def _local(
        self, handle: Handle, hops: int, via: tuple[str, ...]
    ) -> tuple[Record | None, bool]:
        """The record from the store, or from the enterprise node the prefix is delegated to
        (then True: a referral)."""
        record = await self._store.fetch(str(handle))
        if record is not None or handle.prefix == PREFIX_RECORD_PREFIX:
            return record, False
        site = await self.site_of(handle.prefix)
        if site is None or self._remote is None:
            return None, False
        return await self._ask(site, str(handle), hops, via, upstream=False), True

    async def site_of(self, prefix: str) -> str | None:
        """The address of the enterprise node hosting ``prefix``, when it is delegated."""
        try:
            entry = await self.lookup(Handle(PREFIX_RECORD_PREFIX, prefix))
        except HandleNotFound:
            return None
        return site_url(entry.record())
