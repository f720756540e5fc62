"""Every Prometheus metric of the node, and the registry ``GET /metrics`` serves.

The hot path never touches these objects: the resolver, cache and gateways count in plain
Python ints (``resolver/stats.py``, ``CacheStats``, the gateway ``Counters``) and one task per
process (``app/monitoring.py``) pushes the deltas here about once a second. With several worker
processes (``idnode serve --workers N``) prometheus_client's multiprocess mode is used:
``PROMETHEUS_MULTIPROC_DIR`` is set before the workers start, each process writes its values
to files there, and :func:`registry` adds them up.

The names are a contract with the dashboard, which samples ``registry().collect()``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    values,
)
from prometheus_client.multiprocess import MultiProcessCollector

from resolver import stats as resolver_stats

__all__ = [
    "CHANNELS",
    "MULTIPROC_ENV",
    "OUTCOMES",
    "RECALL_ACTIONS",
    "RESOLVE_BUCKETS",
    "Metrics",
    "metrics",
    "multiprocess_dir",
    "registry",
]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_Mode = Literal["livesum", "livemostrecent", "livemin", "livemax"]

OUTCOMES = resolver_stats.OUTCOMES
"""How a resolution was answered; exactly one per resolution:
hit: a record from the cache; miss: from the local store after a cache miss;
not_found: 'handle not found' (cached or not); upstream: from the upstream top-level node;
referral: from the enterprise node a prefix is delegated to; error: any other error answer."""

CHANNELS = ("api", "batch", "mqtt", "lorawan", "nbiot", "handle")
"""Where a registration came from: the handles and identifiers APIs, the batch endpoint and
CSV import, the MQTT device protocol, ChirpStack (LoRaWAN), OneNET/CTWing pushes (NB-IoT)."""

RECALL_ACTIONS = ("recall", "undo")
"""What happened to a recall: an identifier recalled (or its reason restated), or lifted."""

RESOLVE_BUCKETS = resolver_stats.LATENCY_BOUNDS
"""Upper bounds (seconds) of the resolve latency histogram; a cache hit lands in the first."""


@dataclass(frozen=True)
class Metrics:
    """The metric objects of this process (one set per process, see :func:`metrics`)."""

    own: CollectorRegistry
    resolutions: Counter
    resolve_duration: Histogram
    registrations: Counter
    cache_entries: Gauge
    cache_bytes: Gauge
    cache_hits: Counter
    cache_misses: Counter
    mqtt_messages: Counter
    devices_online: Gauge
    devices_offline: Gauge
    enterprises: Gauge
    identifiers: Gauge
    enterprise_resolutions: Counter
    upstream_errors: Counter
    report_delivery_errors: Counter
    task_restarts: Counter
    upstream_up: Gauge
    db_pool_in_use: Gauge
    db_pool_size: Gauge
    recalls: Counter
    page_scans: Counter
    database_reads: Counter
    replica_lag: Gauge


def _build() -> Metrics:
    # prometheus_client picks file-backed values when PROMETHEUS_MULTIPROC_DIR is set at its
    # import; pick again here, since `idnode serve` sets it after importing the app.
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    # `*_created` samples exist only in single-process mode; drop them so one worker or
    # several serve the same series.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    own = CollectorRegistry(auto_describe=True)
    # Per-process gauges add up over live workers; database-wide counts (every process
    # queries the same database) show the latest any live worker read.
    per_process: _Mode = "livesum"
    database_wide: _Mode = "livemostrecent"

    def gauge(name: str, doc: str, mode: _Mode) -> Gauge:
        return Gauge(name, doc, registry=own, multiprocess_mode=mode)

    built = Metrics(
        own=own,
        resolutions=Counter(
            "idnode_resolutions",
            "Resolutions by how they were answered.",
            ["outcome"],
            registry=own,
        ),
        resolve_duration=Histogram(
            "idnode_resolve_duration_seconds",
            "Time to answer a resolution (in the node, without the network).",
            buckets=RESOLVE_BUCKETS,
            registry=own,
        ),
        registrations=Counter(
            "idnode_registrations",
            "Identifiers registered, by channel.",
            ["channel"],
            registry=own,
        ),
        cache_entries=gauge("idnode_cache_entries", "Answers in the resolver caches.", per_process),
        cache_bytes=gauge("idnode_cache_bytes", "Bytes held by the resolver caches.", per_process),
        cache_hits=Counter("idnode_cache_hits", "Resolver cache hits.", registry=own),
        cache_misses=Counter("idnode_cache_misses", "Resolver cache misses.", registry=own),
        mqtt_messages=Counter(
            "idnode_mqtt_messages",
            "Device messages handled by the MQTT gateway, by kind and result.",
            ["kind", "result"],
            registry=own,
        ),
        devices_online=gauge("idnode_devices_online", "Devices seen recently.", database_wide),
        devices_offline=gauge(
            "idnode_devices_offline", "Registered devices not seen recently.", database_wide
        ),
        enterprises=gauge("idnode_enterprises", "Enterprises registered.", database_wide),
        identifiers=gauge("idnode_identifiers", "Identifiers registered.", database_wide),
        enterprise_resolutions=Counter(
            "idnode_enterprise_resolutions",
            "Resolutions answered with a record, by enterprise prefix of this node.",
            ["prefix"],
            registry=own,
        ),
        upstream_errors=Counter(
            "idnode_upstream_errors",
            "Requests to the upstream or an enterprise node that failed.",
            registry=own,
        ),
        report_delivery_errors=Counter(
            "idnode_report_delivery_errors",
            "Reports to the top-level node that could not be delivered.",
            registry=own,
        ),
        task_restarts=Counter(
            "idnode_task_restarts",
            "Long-lived tasks restarted by the supervisor after a crash, by task.",
            ["task"],
            registry=own,
        ),
        upstream_up=gauge(
            "idnode_upstream_up",
            "1 when the last request to the upstream node was answered, else 0.",
            "livemin",
        ),
        db_pool_in_use=gauge(
            "idnode_db_pool_in_use", "Database connections checked out.", per_process
        ),
        db_pool_size=gauge("idnode_db_pool_size", "Database connections pooled.", per_process),
        recalls=Counter(
            "idnode_recalls",
            "Recalls of identifiers, by action: recall or undo.",
            ["action"],
            registry=own,
        ),
        page_scans=Counter(
            "idnode_page_scans", "Public pages of identifiers opened (scans).", registry=own
        ),
        database_reads=Counter(
            "idnode_database_reads",
            "With read replicas: cache misses and read sessions, by where they were read "
            "(replica or primary).",
            ["target"],
            registry=own,
        ),
        replica_lag=Gauge(
            "idnode_replica_lag_seconds",
            "How far each read replica is behind the primary (the largest any process "
            "sampled); -1 while it does not answer.",
            ["replica"],
            registry=own,
            multiprocess_mode="livemax",
        ),
    )
    # Every outcome and channel shows from the start (at 0), so rates work at once.
    for outcome in OUTCOMES:
        built.resolutions.labels(outcome)
    for channel in CHANNELS:
        built.registrations.labels(channel)
    for action in RECALL_ACTIONS:
        built.recalls.labels(action)
    return built


_metrics: Metrics | None = None


def metrics() -> Metrics:
    """This process's metric objects, created on first use (never at import)."""
    global _metrics
    if _metrics is None:
        _metrics = _build()
    return _metrics


def multiprocess_dir() -> str | None:
    """The directory worker processes share their values in, when there are several."""
    return os.environ.get(MULTIPROC_ENV) or None


def registry() -> CollectorRegistry:
    """What ``GET /metrics`` serves: every metric, added up over all worker processes."""
    own = metrics().own
    directory = multiprocess_dir()
    if directory is None:
        return own
    combined = CollectorRegistry()
    MultiProcessCollector(combined, path=directory)  # type: ignore[no-untyped-call]
    return combined
