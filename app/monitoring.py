"""Moving what the node counted into its Prometheus metrics (``app/metrics.py``).

The resolver, cache, gateways and HTTP layer count in plain ints as they work; a
:class:`MetricsPump` per process adds the differences since its last look to the metrics
about once a second, sets the gauges, and every ``census_interval`` counts enterprises,
identifiers and devices in the database. ``GET /metrics`` calls :meth:`MetricsPump.flush` first,
so its own process is never behind.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from prometheus_client import Counter, multiprocess
from sqlalchemy.exc import SQLAlchemyError

from app.errors import DatabaseUnavailable
from app.metrics import Metrics, metrics, multiprocess_dir
from app.node import Node
from app.registry import clock
from app.storage.census import take_census
from app.storage.database import Database
from gateways.mqtt.stats import Counters
from gateways.nbiot import IngestQueue
from resolver.engine import within
from resolver.stats import OUTCOMES

log = logging.getLogger("app.monitoring")

# (kind, result) of idnode_mqtt_messages_total for each gateway counter.
MQTT_MESSAGES: dict[str, tuple[str, str]] = {
    "replayed": ("registration", "replayed"),
    "rejected": ("message", "rejected"),
    "malformed": ("message", "malformed"),
    "heartbeats_received": ("heartbeat", "accepted"),
    "heartbeats_unknown": ("heartbeat", "unknown_device"),
    "lorawan_events": ("lorawan", "applied"),
    "lorawan_duplicates": ("lorawan", "duplicate"),
    "lorawan_unmapped": ("lorawan", "unmapped"),
    "reply_failures": ("reply", "lost"),
    "handler_failures": ("message", "failed"),
}


@dataclass
class Sources:
    """Where the counts come from; the gateways exist only when configured, and a gateway
    process (``idnode gateway``) has no node: it serves no resolutions."""

    database: Database
    node: Node | None
    mqtt: Callable[[], Counters | None]
    nbiot: Callable[[], IngestQueue | None]
    delivery_errors: Callable[[], int]  # failed attempts to report to the top-level node


class MetricsPump:
    """Adds this process's counts to the Prometheus metrics; one per process, as a task."""

    def __init__(self, sources: Sources, *, interval: float, census_interval: float) -> None:
        self.sources = sources
        self.metrics: Metrics = metrics()
        self._interval = interval
        self._census_interval = census_interval
        self._seen: dict[str, float] = {}  # the counts at the last flush, by name

    def _delta(self, name: str, now: float) -> float:
        before = self._seen.get(name, 0)
        self._seen[name] = now
        return now - before if now > before else 0

    def flush(self) -> None:
        """Add what was counted since the last flush; set the gauges."""
        m = self.metrics
        if self.sources.node is not None:
            self._resolutions(self.sources.node)
        self._registrations()
        if self.sources.node is not None:
            self._pages(self.sources.node)
        self._mqtt()
        self._inc(
            m.report_delivery_errors, "report_delivery_errors", self.sources.delivery_errors()
        )
        in_use, size = self.sources.database.pool_use()
        m.db_pool_in_use.set(in_use)
        m.db_pool_size.set(size)
        self._replicas()

    def _replicas(self) -> None:
        replicas = self.sources.database.replicas
        if replicas is None:
            return
        for target, count in replicas.reads.items():
            if delta := self._delta(f"reads.{target}", count):
                self.metrics.database_reads.labels(target).inc(delta)
        for replica in replicas.members:
            self.metrics.replica_lag.labels(replica.name).set(
                -1 if replica.lag is None else replica.lag
            )

    def _resolutions(self, node: Node) -> None:
        m = self.metrics
        stats = node.resolver.stats
        if stats is not None:
            for outcome, count in zip(OUTCOMES, stats.counts, strict=True):
                if delta := self._delta(f"outcome.{outcome}", count):
                    m.resolutions.labels(outcome).inc(delta)
            self._latency(stats.latency_buckets, stats.latency_sum)
            for prefix, count in list(stats.by_prefix.items()):
                if within(prefix, node.settings.node_prefix) and (
                    delta := self._delta(f"prefix.{prefix}", count)
                ):
                    m.enterprise_resolutions.labels(prefix).inc(delta)
            self._inc(m.upstream_errors, "upstream_errors", stats.upstream_errors)
            m.upstream_up.set(
                0 if node.settings.upstream_url is None or stats.upstream_ok is False else 1
            )
        cache = node.resolver.cache.stats
        self._inc(m.cache_hits, "cache.hits", cache.hits + cache.negative_hits)
        self._inc(m.cache_misses, "cache.misses", cache.misses)
        m.cache_entries.set(cache.entries)
        m.cache_bytes.set(cache.bytes)

    def _inc(self, counter: Counter, name: str, now: float) -> None:
        if delta := self._delta(name, now):
            counter.inc(delta)

    def _latency(self, buckets: list[int], total: float) -> None:
        histogram = self.metrics.resolve_duration
        # Histogram.observe() takes one value at a time; a second's resolves are added per
        # bucket instead, through its bucket values (stable in prometheus_client for years).
        for i, count in enumerate(buckets):
            if delta := self._delta(f"latency.{i}", count):
                histogram._buckets[i].inc(delta)
        if delta := self._delta("latency.sum", total):
            histogram._sum.inc(delta)

    def _registrations(self) -> None:
        node = self.sources.node
        counts = dict(node.activity.registrations) if node is not None else {}
        gateway, nbiot = self.sources.mqtt(), self.sources.nbiot()
        if gateway is not None:
            # The gateway's `registered` includes ChirpStack's; split them by channel.
            counts["mqtt"] = gateway.registered - gateway.lorawan_registered
            counts["lorawan"] = gateway.lorawan_registered
        if nbiot is not None:
            counts["nbiot"] = nbiot.registered
        for channel, count in counts.items():
            if delta := self._delta(f"registrations.{channel}", count):
                self.metrics.registrations.labels(channel).inc(delta)

    def _pages(self, node: Node) -> None:
        for action, count in list(node.activity.recalls.items()):
            if delta := self._delta(f"recalls.{action}", count):
                self.metrics.recalls.labels(action).inc(delta)
        self._inc(self.metrics.page_scans, "page_scans", node.scans.scans)

    def _mqtt(self) -> None:
        gateway = self.sources.mqtt()
        if gateway is None:
            return
        created = gateway.registered - gateway.lorawan_registered
        pairs = [(("registration", "created"), created)]
        pairs += [(MQTT_MESSAGES[name], getattr(gateway, name)) for name in MQTT_MESSAGES]
        for (kind, result), count in pairs:
            if delta := self._delta(f"mqtt.{kind}.{result}", count):
                self.metrics.mqtt_messages.labels(kind, result).inc(delta)

    async def census(self) -> None:
        """Count enterprises, identifiers and devices (a few COUNT queries)."""
        node = self.sources.node
        assert node is not None  # run() takes the census only in node processes
        silence = timedelta(seconds=node.settings.device_offline_after)
        async with self.sources.database.read_session() as session:
            counted = await take_census(session, online_since=clock.now() - silence)
        m = self.metrics
        m.enterprises.set(counted.enterprises)
        m.identifiers.set(counted.identifiers)
        m.devices_online.set(counted.devices_online)
        m.devices_offline.set(counted.devices_offline)

    async def run(self) -> None:
        """Flush every ``interval``; take the census every ``census_interval``."""
        next_census = 0.0
        while True:
            self.flush()
            if self.sources.node is not None and time.monotonic() >= next_census:
                next_census = time.monotonic() + self._census_interval
                try:
                    await self.census()
                except (DatabaseUnavailable, SQLAlchemyError, OSError) as exc:
                    log.warning("monitoring.census_failed", extra={"error": str(exc)})
                forget_dead_workers()
            await asyncio.sleep(self._interval)


def forget_dead_workers() -> None:
    """Drop the live gauges of worker processes that are gone (crashed or replaced), as
    gunicorn's ``child_exit`` hook would; their counters stay, so totals never go down."""
    directory = multiprocess_dir()
    if directory is None:
        return
    pids = {
        int(path.stem.rsplit("_", 1)[1])
        for path in Path(directory).glob("gauge_live*_*.db")
        if path.stem.rsplit("_", 1)[1].isdigit()
    }
    for pid in pids:
        if not _alive(pid):
            multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]


def stopped() -> None:
    """This process is leaving: its live gauges no longer count."""
    directory = multiprocess_dir()
    if directory is not None:
        multiprocess.mark_process_dead(os.getpid(), directory)  # type: ignore[no-untyped-call]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
