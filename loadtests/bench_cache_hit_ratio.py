"""Hit ratio of the resolver cache under the resolve benchmark's Zipf load, warm-up included.

    .venv/bin/python loadtests/bench_cache_hit_ratio.py [--warm-up 3000000] [--measure 500000]

Feeds the very request stream of ``bench_resolve.py``'s zipf scenario (Zipf s=1.1 over
1,000,000 identifiers, same seed and construction) through a real ``ResolverCache`` of
100,000 entries, with no server in between, and prints the hit ratio after several warm-up
lengths beside two ceilings of the same stream:

- compulsory: requests for identifiers never requested before miss in any cache;
- top-100k: a cache holding exactly the 100,000 most popular identifiers, always.

This tells what limits the benchmark's figure: the cache's policy, or the length of the
warm-up (a cache that has not filled yet can only miss what it has not seen).
"""

from __future__ import annotations

import argparse
import asyncio

import numpy as np
from bench_cache_memory import record  # run as a script: loadtests/ is on sys.path

from resolver.cache import ResolverCache
from resolver.record import Record

ROWS = 1_000_000
ENTRIES = 100_000


def zipf_stream(count: int) -> tuple[np.ndarray, np.ndarray]:
    """The identifiers (row numbers) requested, as bench_resolve.py draws them, and the
    100,000 most popular."""
    rng = np.random.default_rng(7)
    ranks = np.arange(1, ROWS + 1, dtype=np.float64)
    cdf = np.cumsum(ranks**-1.1)
    cdf /= cdf[-1]
    permutation = rng.permutation(ROWS)
    return permutation[np.searchsorted(cdf, rng.random(count))], permutation[:ENTRIES]


async def replay(stream: list[int], warm_up: int) -> float:
    cache = ResolverCache(max_entries=ENTRIES, max_bytes=1 << 40)
    records: dict[int, Record] = {}

    async def load(i: int) -> Record:
        return records.setdefault(i, record(i))

    for n, i in enumerate(stream):
        if n == warm_up:
            start = cache.stats.hits, cache.stats.misses
        handle = f"88.999.1/B{i:07d}"
        if cache.fresh(handle) is None:
            await cache.get_or_load(handle, lambda i=i: load(i))
    hits, misses = cache.stats.hits - start[0], cache.stats.misses - start[1]
    return hits / (hits + misses)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--warm-up", type=int, default=3_000_000)
    parser.add_argument("--measure", type=int, default=500_000)
    args = parser.parse_args()
    draws, top = zipf_stream(args.warm_up + args.measure)
    stream = draws.tolist()
    popular = set(top.tolist())
    print(
        f"Zipf s=1.1 over {ROWS:,} identifiers, {ENTRIES:,}-entry cache, {args.measure:,} measured"
    )
    print(
        f"{'warm-up':>12} {'distinct seen':>14} {'LRU cache':>10} {'compulsory':>11} {'top-100k':>9}"
    )
    for warm_up in sorted({400_000, 1_000_000, args.warm_up}):
        window = stream[warm_up : warm_up + args.measure]
        seen = set(stream[:warm_up])
        first_time = 0
        for i in window:
            if i not in seen:
                first_time += 1
                seen.add(i)
        ratio = asyncio.run(replay(stream[: warm_up + args.measure], warm_up))
        top_ratio = sum(i in popular for i in window) / len(window)
        print(
            f"{warm_up:>12,} {len(set(stream[:warm_up])):>14,} {ratio:>10.3f} "
            f"{1 - first_time / len(window):>11.3f} {top_ratio:>9.3f}"
        )


if __name__ == "__main__":
    main()
