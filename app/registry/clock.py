"""The one place the node reads the time, and the Handle timestamp format."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)


def handle_timestamp(moment: datetime) -> str:
    """ISO 8601 UTC to the second, as Handle servers write value timestamps."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def in_utc(moment: datetime) -> datetime:
    """An aware time from outside, in UTC; ValueError when that falls outside the years 1 to
    9999 (an offset can push 9999-12-31 or 0001-01-01 over the edge, where no database or
    ``datetime`` goes)."""
    try:
        return moment.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError(f"{moment.isoformat()} is out of range (years 1 to 9999 in UTC)") from exc


def as_utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def api_time(moment: datetime) -> str:
    """ISO 8601 in UTC ending in ``Z``, as the API's models write times, so the CLI's JSON
    and the API's agree."""
    return as_utc(moment).astimezone(UTC).isoformat().replace("+00:00", "Z")
