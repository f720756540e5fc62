"""Memory of the resolver cache: resident bytes for N cached identifiers.

    .venv/bin/python loadtests/bench_cache_memory.py [--entries 1000000]

Fills a ResolverCache with N entries shaped like the resolve benchmark's identifiers (a URL
and an HS_ADMIN value), the way the resolver fills it, and reports the growth of this
process's resident memory (the ceiling being the 1 GiB target) and bytes per entry, beside
the cache's own byte accounting.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import resource

from resolver.cache import ResolverCache
from resolver.record import Record
from resolver.values import HandleValue

PAGE = os.sysconf("SC_PAGE_SIZE")
TARGET = 1024**3


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


def record(i: int) -> Record:
    handle = f"88.999.1/B{i:07d}"
    return Record(
        handle,
        (
            HandleValue(1, "URL", "string", f"https://trace.example.com/b/{i}", timestamp="2026-11-26T10:00:00Z"),
            HandleValue(100, "HS_ADMIN", "admin", {"handle": "88.999.1/ADMIN", "index": 300, "permissions": "011111110011"},
                        timestamp="2026-11-26T10:00:00Z"),
        ),
    )  # fmt: skip


async def fill(cache: ResolverCache, entries: int) -> None:
    for i in range(entries):
        current = record(i)

        async def load(current: Record = current) -> Record:
            return current

        await cache.get_or_load(current.handle, load)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=1_000_000)
    entries = parser.parse_args().entries
    cache = ResolverCache(max_entries=entries, max_bytes=8 * TARGET)
    gc.collect()
    before = rss()
    asyncio.run(fill(cache, entries))
    gc.collect()
    grown = rss() - before
    assert len(cache) == entries, len(cache)
    print(f"entries            {entries:,}")
    print(f"resident growth    {grown / 2**20:,.0f} MiB  ({grown / entries:,.0f} bytes per entry)")
    print(
        f"cache accounting   {cache.stats.bytes / 2**20:,.0f} MiB  ({cache.stats.bytes / entries:,.0f} bytes per entry)"
    )
    print(
        f"peak resident      {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10:,.0f} MiB"
    )
    print(f"vs 1 GiB target    {grown / TARGET:.2f} x  (target <= 1.00 for 1,000,000 entries)")


if __name__ == "__main__":
    main()
