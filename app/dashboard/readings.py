"""One reading of a Prometheus registry, and the figures the dashboard derives from two.

Counters only ever grow, so everything the dashboard shows over time (rates, recent
percentiles, the hit ratio, top enterprises) is a difference between two readings. A
difference below zero means a worker process restarted and took its counts with it; it
counts as zero rather than as negative traffic.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

__all__ = ["Reading", "quantile", "read"]

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Reading:
    """Every sample of a registry at time ``t`` (seconds since the epoch)."""

    t: float
    samples: Mapping[tuple[str, Labels], float] = field(default_factory=dict)

    def total(self, name: str) -> float | None:
        """The sum of the samples called ``name``; None when there are none."""
        found = [value for (sample, _), value in self.samples.items() if sample == name]
        return math.fsum(found) if found else None

    def by(self, name: str, label: str) -> dict[str, float]:
        """The samples called ``name``, added up per value of ``label``."""
        totals: dict[str, float] = {}
        for (sample, labels), value in self.samples.items():
            if sample != name:
                continue
            key = dict(labels).get(label)
            if key is not None:
                totals[key] = totals.get(key, 0.0) + value
        return totals

    def buckets(self, histogram: str) -> dict[float, float]:
        """Cumulative counts of a histogram by upper bound (``inf`` for ``+Inf``)."""
        return {float(le): count for le, count in self.by(f"{histogram}_bucket", "le").items()}

    def increase(self, earlier: Reading, name: str) -> float:
        """How much the counter ``name`` grew since ``earlier`` (0 across a reset)."""
        return _grown(self.total(name), earlier.total(name))

    def increase_by(self, earlier: Reading, name: str, label: str) -> dict[str, float]:
        before = earlier.by(name, label)
        return {key: _grown(value, before.get(key)) for key, value in self.by(name, label).items()}


def read(registry: CollectorRegistry, t: float) -> Reading:
    """Collect ``registry`` once."""
    samples: dict[tuple[str, Labels], float] = {}
    for family in registry.collect():
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            samples[key] = samples.get(key, 0.0) + sample.value
    return Reading(t, samples)


def quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """The ``q`` quantile of observations counted in cumulative ``buckets``.

    Interpolates linearly inside the bucket holding it, as Prometheus' histogram_quantile
    does; in the ``+Inf`` bucket the answer is the largest finite bound. None when no
    observation was counted.
    """
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank and count > below:
            if math.isinf(bound):
                return lower
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


def bucket_increase(later: Reading, earlier: Reading, histogram: str) -> dict[float, float]:
    """The observations a histogram counted between two readings, per bucket."""
    before = earlier.buckets(histogram)
    return {le: _grown(count, before.get(le)) for le, count in later.buckets(histogram).items()}


def ratio(part: float, parts: Iterable[float]) -> float | None:
    whole = math.fsum(parts)
    return part / whole if whole > 0 else None


def _grown(now: float | None, before: float | None) -> float:
    if now is None:
        return 0.0
    return max(now - (before or 0.0), 0.0)
