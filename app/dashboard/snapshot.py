"""What the dashboard shows at one instant, computed from the readings of the last seconds.

The metric names are the contract of ``app/metrics.py``; the dashboard reads the very
registry ``GET /metrics`` serves, so both always agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.dashboard.readings import Reading, bucket_increase, quantile, ratio

__all__ = ["CHART_FIELDS", "snapshot"]

RESOLUTIONS = "idnode_resolutions_total"
RESOLVE_DURATION = "idnode_resolve_duration_seconds"
REGISTRATIONS = "idnode_registrations_total"
CACHE_HITS = "idnode_cache_hits_total"
CACHE_MISSES = "idnode_cache_misses_total"
ENTERPRISE_RESOLUTIONS = "idnode_enterprise_resolutions_total"
UPSTREAM_ERRORS = "idnode_upstream_errors_total"
REPORT_ERRORS = "idnode_report_delivery_errors_total"
GAUGES = {
    "devices_online": "idnode_devices_online",
    "devices_offline": "idnode_devices_offline",
    "enterprises": "idnode_enterprises",
    "identifiers": "idnode_identifiers",
    "cache_entries": "idnode_cache_entries",
    "cache_bytes": "idnode_cache_bytes",
    "db_pool_in_use": "idnode_db_pool_in_use",
    "db_pool_size": "idnode_db_pool_size",
}
TOP_ENTERPRISES = 10
# What the charts plot; the page receives these for every point of the history.
CHART_FIELDS = ("t", "resolutions_per_s", "registrations_per_s", "registrations_by_channel")


def snapshot(readings: Sequence[Reading], *, window: int, top_window: int) -> dict[str, Any]:
    """The dashboard figures at the newest of ``readings`` (oldest first, at least one).

    Rates compare the newest reading with the one before; the hit ratio and percentiles
    look back ``window`` readings (a steadier figure than one second gives); top enterprises
    ``top_window`` readings.
    """
    now, previous = readings[-1], readings[-2] if len(readings) > 1 else None
    recent = readings[max(len(readings) - 1 - window, 0)]
    longer = readings[max(len(readings) - 1 - top_window, 0)]
    seconds = now.t - previous.t if previous is not None else 0.0

    def per_second(grown: float) -> float:
        return grown / seconds if seconds > 0 else 0.0

    by_channel = now.increase_by(previous, REGISTRATIONS, "channel") if previous else {}
    latency = bucket_increase(now, recent, RESOLVE_DURATION)
    p50, p99 = quantile(0.5, latency), quantile(0.99, latency)
    hits, misses = now.increase(recent, CACHE_HITS), now.increase(recent, CACHE_MISSES)
    upstream_up = now.total("idnode_upstream_up")
    return {
        "t": now.t,
        "resolutions_per_s": per_second(now.increase(previous, RESOLUTIONS)) if previous else 0.0,
        "resolutions_total": now.total(RESOLUTIONS) or 0.0,
        "resolutions_by_outcome": now.by(RESOLUTIONS, "outcome"),
        "registrations_per_s": per_second(sum(by_channel.values())),
        "registrations_by_channel": {key: per_second(value) for key, value in by_channel.items()},
        "registrations_total": now.total(REGISTRATIONS) or 0.0,
        "cache_hit_ratio": ratio(hits, (hits, misses)),
        "latency_p50_ms": p50 * 1000 if p50 is not None else None,
        "latency_p99_ms": p99 * 1000 if p99 is not None else None,
        **{key: now.total(name) for key, name in GAUGES.items()},
        "top_enterprises": _top(now, longer),
        "upstream": {
            "up": None if upstream_up is None else upstream_up >= 1,
            "errors_total": now.total(UPSTREAM_ERRORS) or 0.0,
            "errors_per_s": per_second(now.increase(previous, UPSTREAM_ERRORS))
            if previous
            else 0.0,
            "report_delivery_errors_total": now.total(REPORT_ERRORS) or 0.0,
        },
    }


def chart_point(figures: dict[str, Any]) -> dict[str, Any]:
    """The part of a snapshot the charts need (what the history sends)."""
    return {key: figures[key] for key in CHART_FIELDS}


def _top(now: Reading, earlier: Reading) -> list[dict[str, Any]]:
    seconds = now.t - earlier.t
    grown = now.increase_by(earlier, ENTERPRISE_RESOLUTIONS, "prefix")
    busiest = sorted(
        ((prefix, count) for prefix, count in grown.items() if count > 0),
        key=lambda item: (-item[1], item[0]),
    )[:TOP_ENTERPRISES]
    return [
        {"prefix": prefix, "resolutions": count, "per_s": count / seconds if seconds > 0 else 0.0}
        for prefix, count in busiest
    ]
