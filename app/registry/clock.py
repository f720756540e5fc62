"""The one place the node reads the time, and the Handle timestamp format."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)


def handle_timestamp(moment: datetime) -> str:
    """ISO 8601 UTC to the second, as Handle servers write value timestamps."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def as_utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def api_time(moment: datetime) -> str:
    """ISO 8601 in UTC ending in ``Z``, as the API's models write times, so the CLI's JSON
    and the API's agree."""
    return as_utc(moment).astimezone(UTC).isoformat().replace("+00:00", "Z")
