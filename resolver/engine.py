"""The resolution engine: decides who answers for an identifier and asks them, through the cache.

Order (docs/domain.md section 4): the local store for prefixes under this node's prefix;
for a local prefix whose record ``0.NA/<prefix>`` names an enterprise node (``HS_SITE``), that
node; for anything else, the configured upstream. It works over a :class:`Store` so it needs
no database library; the node passes its own.
"""

from __future__ import annotations

from typing import Protocol

from resolver.cache import Entry, ResolverCache
from resolver.errors import HandleNotFound, InvalidHandle, NotResponsible
from resolver.handle_protocol.remote import Remote
from resolver.identifier import PREFIX_RECORD_PREFIX, Handle, parse_handle
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

    The engine owns the lookup and the counting: every resolution a door answers goes
    through :meth:`parse` (an invalid identifier counts as an error), :meth:`cached` (the
    lean door's hit) or :meth:`resolve`, and is counted once in ``stats`` (when given) by
    how it was answered; :meth:`lookup` is the same without counting, for the node's own
    bookkeeping reads.
    """

    def __init__(
        self,
        store: Store,
        *,
        node_prefix: str,
        cache: ResolverCache | None = None,
        remote: Remote | None = None,
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

    def parse(self, text: str, started: float | None = None) -> Handle:
        """The identifier a door was asked for; one that is not valid is counted as an error
        resolution and raised (:class:`InvalidHandle`)."""
        try:
            return parse_handle(text)
        except InvalidHandle:
            if self.stats is not None:
                self.stats.observe(ERROR, perf_counter() if started is None else started)
            raise

    def cached(self, text: str, started: float) -> Entry | None:
        """The fresh cache entry for ``text`` as a client sent it, counted as a hit (or a
        not-found); None on a miss, which :meth:`resolve` then counts."""
        entry = self.cache.fresh(text)
        if entry is not None and self.stats is not None:
            if entry.found:  # a hit's key is its normalised text: prefix/suffix
                self.stats.observe(HIT, started, text.partition("/")[0])
            else:
                self.stats.observe(NOT_FOUND, started)
        return entry

    async def resolve(
        self,
        handle: Handle,
        *,
        hops: int = 0,
        via: tuple[str, ...] = (),
        started: float | None = None,
    ) -> Entry:
        """The full record with its public answer; callers narrow it to what the asker may see.

        ``hops`` and ``via`` say how far a request forwarded by other nodes has come;
        ``started`` is when the door began (a ``perf_counter()`` reading), for the latency.
        """
        stats = self.stats
        if stats is None:
            return (await self._resolve(handle, hops, via))[0]
        started = perf_counter() if started is None else started
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

    async def referral(self, handle: Handle) -> Record | None:
        """The prefix record (``0.NA/<prefix>``) of a local identifier whose prefix is
        delegated to an enterprise node, counted as a referral; None when it is not."""
        if not self.is_local(handle) or handle.prefix == PREFIX_RECORD_PREFIX:
            return None
        started = perf_counter()
        prefix_record = await self._prefix_record(handle.prefix)
        if prefix_record is None or site_url(prefix_record) is None:
            return None
        if self.stats is not None:
            self.stats.observe(REFERRAL, started, handle.prefix)
        return prefix_record

    async def _resolve(self, handle: Handle, hops: int, via: tuple[str, ...]) -> tuple[Entry, int]:
        key = str(handle)
        entry = self.cache.fresh(key)
        if entry is not None:
            if not entry.found:
                raise HandleNotFound.of(key)
            return entry, HIT
        self._check_path(hops, via)
        load = _Load(self, handle, hops, (*via, self.node_id))
        try:
            if hops and self.cache.loading(key):
                # A request forwarded by another node for what this process is fetching
                # already is most likely that fetch coming back round (the Handle protocol
                # carries no list of the nodes passed): waiting for it would wait for itself.
                # Fetch again, so the hop limit ends a loop.
                return await self.cache.load_alone(key, load.run), load.outcome
            # Concurrent misses share one load; those that did not run it count as a miss.
            return await self.cache.load_missing(key, load.run), load.outcome
        except UpstreamUnavailable:
            stale = self.cache.stale(key)
            if stale is None:
                raise
            return stale, HIT

    def _source(self, handle: Handle) -> str | None:
        """Where a miss is loaded from: None for the local store, else the upstream's URL."""
        if self.is_local(handle):
            return None
        if self._upstream_url is not None and self._remote is not None:
            return self._upstream_url
        raise NotResponsible(
            f"this node holds prefix {self._node_prefix} only and has no upstream "
            f"to resolve {handle} through"
        )

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
        prefix_record = await self._prefix_record(prefix)
        return None if prefix_record is None else site_url(prefix_record)

    async def _prefix_record(self, prefix: str) -> Record | None:
        try:
            entry = await self.lookup(Handle(PREFIX_RECORD_PREFIX, prefix))
        except HandleNotFound:
            return None
        return entry.record()


class _Load:
    """One miss's load, and how it was answered: read by :meth:`Resolver.resolve` after the
    cache ran it (a caller that joined another's load keeps :data:`MISS`)."""

    __slots__ = ("_handle", "_hops", "_path", "_resolver", "_source", "outcome")

    def __init__(
        self, resolver: Resolver, handle: Handle, hops: int, path: tuple[str, ...]
    ) -> None:
        self._resolver = resolver
        self._handle = handle
        self._hops = hops
        self._path = path
        self._source = resolver._source(handle)  # raises NotResponsible before any load
        self.outcome = MISS

    async def run(self) -> Record | None:
        resolver, handle = self._resolver, self._handle
        if self._source is None:
            record, referred = await resolver._local(handle, self._hops, self._path)
            self.outcome = REFERRAL if referred else MISS
            return record
        self.outcome = UPSTREAM
        return await resolver._ask(self._source, str(handle), self._hops, self._path, upstream=True)
