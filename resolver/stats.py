"""What the resolver counts: resolutions by outcome, their latency, answers per prefix.

Plain ints and a fixed-bucket list, because this runs on every resolve (a cache hit costs a
few microseconds; a metrics library call would be a large part of that). Whoever exports the
numbers reads them from outside and works with differences between two readings.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from time import perf_counter

__all__ = [
    "ERROR",
    "HIT",
    "LATENCY_BOUNDS",
    "MISS",
    "NOT_FOUND",
    "OUTCOMES",
    "REFERRAL",
    "UPSTREAM",
    "ResolveStats",
    "perf_counter",
]

OUTCOMES = ("hit", "miss", "not_found", "upstream", "referral", "error")
HIT, MISS, NOT_FOUND, UPSTREAM, REFERRAL, ERROR = range(len(OUTCOMES))

LATENCY_BOUNDS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
"""Upper bounds in seconds of the latency buckets (one more bucket holds anything slower)."""

MAX_PREFIXES = 10_000  # distinct prefixes counted; beyond that, new ones are not


class ResolveStats:
    """Counters of one resolver; only ever incremented, so readers take differences."""

    __slots__ = (
        "by_prefix",
        "counts",
        "latency_bounds",
        "latency_buckets",
        "latency_sum",
        "upstream_errors",
        "upstream_ok",
    )

    def __init__(self, latency_bounds: Sequence[float] = LATENCY_BOUNDS) -> None:
        self.counts = [0] * len(OUTCOMES)
        self.latency_bounds = tuple(latency_bounds)
        self.latency_buckets = [0] * (len(self.latency_bounds) + 1)
        self.latency_sum = 0.0
        self.by_prefix: dict[str, int] = {}
        self.upstream_errors = 0  # requests to the upstream or an enterprise node that failed
        self.upstream_ok: bool | None = None  # the last request to the upstream node (None: none)

    def observe(self, outcome: int, started: float, prefix: str | None = None) -> None:
        """Count one resolution that began at ``started`` (a ``perf_counter()`` reading).

        ``prefix`` names whose record was answered (for answers per enterprise).
        """
        elapsed = perf_counter() - started
        self.counts[outcome] += 1
        bounds = self.latency_bounds
        # Cache hits fall in the first bucket: skip the search for them. bisect_left: a value
        # equal to a bound belongs to that bucket (Prometheus' `le`).
        self.latency_buckets[0 if elapsed <= bounds[0] else bisect_left(bounds, elapsed)] += 1
        self.latency_sum += elapsed
        if prefix is not None:
            seen = self.by_prefix
            if prefix in seen:
                seen[prefix] += 1
            elif len(seen) < MAX_PREFIXES:
                seen[prefix] = 1
