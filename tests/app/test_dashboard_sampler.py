"""The dashboard's figures from a Prometheus registry: rates, percentiles, hit ratio, top
enterprises, and the sampler's life (started by the first listener, stopped when idle)."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from app.dashboard.readings import quantile, read
from app.dashboard.sampler import Sampler
from app.dashboard.snapshot import snapshot
from app.metrics import RESOLVE_BUCKETS


class NodeMetrics:
    """A registry with the dashboard's metrics, as app/metrics.py names them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.resolutions = Counter("idnode_resolutions", "", ["outcome"], registry=r)
        self.duration = Histogram(
            "idnode_resolve_duration_seconds", "", buckets=RESOLVE_BUCKETS, registry=r
        )
        self.registrations = Counter("idnode_registrations", "", ["channel"], registry=r)
        self.hits = Counter("idnode_cache_hits", "", registry=r)
        self.misses = Counter("idnode_cache_misses", "", registry=r)
        self.by_prefix = Counter("idnode_enterprise_resolutions", "", ["prefix"], registry=r)
        self.identifiers = Gauge("idnode_identifiers", "", registry=r)
        self.upstream_up = Gauge("idnode_upstream_up", "", registry=r)
        self.upstream_errors = Counter("idnode_upstream_errors", "", registry=r)

    def at(self, t: float):  # type: ignore[no-untyped-def]
        return read(self.registry, t)


def test_rates_come_from_the_growth_since_the_previous_reading() -> None:
    m = NodeMetrics()
    m.resolutions.labels("hit").inc(1000)  # before the dashboard looked: not a rate
    first = m.at(100.0)
    m.resolutions.labels("hit").inc(300)
    m.resolutions.labels("not_found").inc(100)
    m.registrations.labels("api").inc(20)
    m.registrations.labels("mqtt").inc(10)
    figures = snapshot([first, m.at(102.0)], window=10, top_window=60)
    assert figures["resolutions_per_s"] == 200.0  # 400 in 2 s
    assert figures["resolutions_total"] == 1400.0
    assert figures["registrations_per_s"] == 15.0
    assert figures["registrations_by_channel"] == {"api": 10.0, "mqtt": 5.0}
    assert figures["registrations_total"] == 30.0


def test_a_first_reading_alone_has_totals_but_no_rates() -> None:
    m = NodeMetrics()
    m.resolutions.labels("hit").inc(5)
    m.identifiers.set(42)
    figures = snapshot([m.at(1.0)], window=10, top_window=60)
    assert figures["resolutions_per_s"] == 0.0
    assert figures["resolutions_total"] == 5.0
    assert figures["identifiers"] == 42.0
    assert figures["cache_hit_ratio"] is None
    assert figures["latency_p50_ms"] is None


def test_a_counter_that_went_back_counts_as_no_traffic() -> None:
    """A restarted worker's counts start over; that is not negative traffic."""
    before, after = NodeMetrics(), NodeMetrics()
    before.resolutions.labels("hit").inc(500)
    after.resolutions.labels("hit").inc(20)
    figures = snapshot([before.at(1.0), after.at(2.0)], window=10, top_window=60)
    assert figures["resolutions_per_s"] == 0.0


def test_percentiles_come_from_the_recent_observations_only() -> None:
    m = NodeMetrics()
    for _ in range(1000):  # slow ones long ago must not weigh on the recent p99
        m.duration.observe(2.0)
    readings = [m.at(0.0)]
    for second in range(1, 4):
        for _ in range(98):
            m.duration.observe(0.00005)  # cache hits: first bucket (<= 0.1 ms)
        for _ in range(2):
            m.duration.observe(0.004)  # in the 2.5-5 ms bucket
        readings.append(m.at(float(second)))
    figures = snapshot(readings, window=3, top_window=60)
    # 300 recent observations: the 150th is in the first bucket (0 to 0.1 ms, interpolated)
    assert figures["latency_p50_ms"] == pytest.approx(0.1 * 150 / 294)
    # the 297th: 3rd of the 6 in the 2.5-5 ms bucket
    assert figures["latency_p99_ms"] == pytest.approx(2.5 + 2.5 * 3 / 6)


def test_quantile_interpolates_and_stops_at_the_largest_finite_bound() -> None:
    buckets = {0.001: 0.0, 0.01: 10.0, 0.1: 10.0, float("inf"): 20.0}
    assert quantile(0.5, buckets) == pytest.approx(0.01)
    assert quantile(0.25, buckets) == pytest.approx(0.001 + 0.009 * 0.5)
    assert quantile(0.99, buckets) == pytest.approx(0.1)  # in +Inf: the last finite bound
    assert quantile(0.5, {0.1: 0.0, float("inf"): 0.0}) is None


def test_hit_ratio_is_over_the_window() -> None:
    m = NodeMetrics()
    m.misses.inc(1000)  # a cold start long ago
    readings = [m.at(0.0)]
    m.hits.inc(90)
    m.misses.inc(10)
    readings.append(m.at(1.0))
    assert snapshot(readings, window=1, top_window=60)["cache_hit_ratio"] == pytest.approx(0.9)
    readings.append(m.at(2.0))  # nothing looked up in the last second
    assert snapshot(readings, window=1, top_window=60)["cache_hit_ratio"] is None


def test_top_enterprises_rank_the_recent_traffic() -> None:
    m = NodeMetrics()
    m.by_prefix.labels("88.999.1").inc(10_000)  # busy long ago, quiet now
    readings = [m.at(0.0)]
    m.by_prefix.labels("88.999.1").inc(5)
    m.by_prefix.labels("88.999.2").inc(120)
    m.by_prefix.labels("88.999.3").inc(40)
    readings.append(m.at(4.0))
    top = snapshot(readings, window=10, top_window=60)["top_enterprises"]
    assert top == [
        {"prefix": "88.999.2", "resolutions": 120.0, "per_s": 30.0},
        {"prefix": "88.999.3", "resolutions": 40.0, "per_s": 10.0},
        {"prefix": "88.999.1", "resolutions": 5.0, "per_s": 1.25},
    ]


def test_upstream_state_and_errors() -> None:
    m = NodeMetrics()
    m.upstream_up.set(1)
    first = m.at(0.0)
    m.upstream_errors.inc(3)
    m.upstream_up.set(0)
    upstream = snapshot([first, m.at(1.0)], window=10, top_window=60)["upstream"]
    assert upstream["up"] is False
    assert upstream["errors_total"] == 3.0
    assert upstream["errors_per_s"] == 3.0
    assert snapshot([first], window=10, top_window=60)["upstream"]["up"] is True


async def test_the_first_listener_starts_sampling_and_idle_stops_it() -> None:
    m = NodeMetrics()
    ticks = itertools.count(1000)
    sampler = Sampler(
        lambda: m.registry, interval=0.02, idle_stop=0.1, clock=lambda: float(next(ticks))
    )
    assert not sampler.running  # nothing sampled until a dashboard opens
    async with sampler.listen() as listener:
        assert sampler.running
        first = await listener.next()
        m.resolutions.labels("hit").inc(7)
        following = await listener.next()
        assert following["t"] == first["t"] + 1
        assert following["resolutions_per_s"] == 7.0
    async with sampler.listen() as second:  # joins the same running sampler, with its history
        assert [f["t"] for f in second.history][:2] == [first["t"], following["t"]]
    for _ in range(100):
        if not sampler.running:
            break
        await asyncio.sleep(0.02)
    assert not sampler.running


async def test_stop_ends_the_sampling_at_shutdown() -> None:
    m = NodeMetrics()
    sampler = Sampler(lambda: m.registry, interval=0.02)
    async with sampler.listen() as listener:
        await listener.next()
        await sampler.stop()
        assert not sampler.running


async def test_a_slow_listener_gets_the_newest_figures() -> None:
    m = NodeMetrics()
    sampler = Sampler(lambda: m.registry, interval=0.01)
    async with sampler.listen() as listener:
        await asyncio.sleep(0.2)  # ~20 snapshots while this page did not read
        m.identifiers.set(99)
        await asyncio.sleep(0.05)
        latest = None
        for _ in range(10):
            latest = await listener.next()
            if latest["identifiers"] == 99.0:
                break
        assert latest is not None
        assert latest["identifiers"] == 99.0
    await sampler.stop()
