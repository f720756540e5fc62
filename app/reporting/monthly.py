"""``idnode report monthly``: the operations report a secondary node gives the top-level node
and its operator each month (enterprises, prefixes, identifier changes, resolutions, errors,
availability, reporting backlog), as JSON and as a readable summary."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.registry import clock
from app.reporting.statistics import OPERATIONS, period_statistics
from app.storage import outbox
from app.storage import statistics as repo

_MONTH = re.compile(r"(\d{4})-(\d{2})")


class InvalidMonth(ValueError):
    """The month is not YYYY-MM (with a month from 01 to 12)."""


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """``[first instant, first instant of the next month)`` in UTC."""
    match = _MONTH.fullmatch(month.strip())
    if match is None or not 1 <= int(match[2]) <= 12:
        raise InvalidMonth(f"month must be YYYY-MM, e.g. 2026-03, not {month!r}")
    year, number = int(match[1]), int(match[2])
    start = datetime(year, number, 1, tzinfo=UTC)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=UTC)
    return start, end


async def monthly_report(session: AsyncSession, month: str, *, top: int = 10) -> dict[str, Any]:
    """Everything the report says about ``month``. A month not yet over is measured up to
    now (availability is the share of the time so far)."""
    start, end = month_bounds(month)
    now = clock.now()
    measured_end = min(end, max(now, start))
    period = await period_statistics(session, start, measured_end)
    first, last = await repo.sampled_span(session)
    # Availability counts from when the node first served, not from before it existed.
    measured_start = max(start, clock.as_utc(first)) if first is not None else None
    availability = None
    if measured_start is not None and measured_start < measured_end:
        span = (measured_end - measured_start).total_seconds()
        availability = round(min(1.0, period.covered_seconds / span) * 100, 3)
    state = await outbox.state(session)
    return {
        "node": None,  # filled in by the caller, which knows the settings
        "month": f"{start:%Y-%m}",
        "start": start.isoformat(),
        "end": end.isoformat(),
        "enterprises": _counts(await repo.enterprises_created(session, start, end)),
        "prefixes": _counts(await repo.prefixes_created(session, start, end)),
        "identifiers": {
            "registered": period.changes["create"],
            "updated": period.changes["update"],
            "deleted": period.changes["delete"],
            "heldAtEnd": await repo.identifiers_at(session, end),
            "topEnterprises": await _top_enterprises(session, start, end, top),
        },
        "resolutions": period.resolutions,
        "errors": period.errors,
        "availabilityPercent": availability,
        "measuredFrom": measured_start.isoformat() if measured_start is not None else None,
        "measuredUntil": measured_end.isoformat(),
        "lastSample": clock.as_utc(last).isoformat() if last is not None else None,
        "outbox": {
            "pending": state.pending,
            "delivered": state.delivered,
            "oldestPending": (
                clock.as_utc(state.oldest_pending).isoformat() if state.oldest_pending else None
            ),
            "maxAttempts": state.max_attempts,
        },
    }


async def _top_enterprises(
    session: AsyncSession, start: datetime, end: datetime, top: int
) -> list[dict[str, Any]]:
    """The enterprises whose identifiers changed most in the month, with counts by kind."""
    by_prefix: dict[str, dict[str, Any]] = {}
    for prefix, name, operation, n in await repo.changes_by_enterprise(session, start, end):
        entry = by_prefix.setdefault(
            prefix, {"prefix": prefix, "enterprise": name} | dict.fromkeys(OPERATIONS, 0)
        )
        entry[operation] = n
    ranked = sorted(by_prefix.values(), key=lambda e: (-sum(e[o] for o in OPERATIONS), e["prefix"]))
    return [
        {
            "prefix": e["prefix"],
            "enterprise": e["enterprise"],
            "registered": e["create"],
            "updated": e["update"],
            "deleted": e["delete"],
        }
        for e in ranked[:top]
    ]


def _counts(new_and_total: tuple[int, int]) -> dict[str, int]:
    return {"new": new_and_total[0], "total": new_and_total[1]}


def _availability(report: dict[str, Any]) -> str:
    if report["availabilityPercent"] is None:
        return (
            "Availability     not measured yet: the node has written no statistics sample "
            "(each process writes one within IDNODE_REPORT_STATS_FLUSH seconds of serving)"
        )
    return (
        f"Availability     {report['availabilityPercent']:>10.3f} %  (from "
        f"{report['measuredFrom']}, when the node first served, until {report['measuredUntil']})"
    )


def as_text(report: dict[str, Any]) -> str:
    """The report for people: one screen, the same figures as the JSON."""
    ids, box = report["identifiers"], report["outbox"]
    # Resolutions and errors reach the database in each process's statistics samples
    # (within IDNODE_REPORT_STATS_FLUSH seconds, and when it stops): say how recent they are.
    sampled = (
        f"  (up to the last statistics sample, {report['lastSample']})"
        if report["lastSample"]
        else "  (no statistics sample written yet)"
    )
    lines = [
        f"idnode monthly operations report, node {report['node']}, {report['month']}",
        "",
        f"Enterprises      {report['enterprises']['new']:>10} new   "
        f"{report['enterprises']['total']:>10} total",
        f"Prefixes         {report['prefixes']['new']:>10} new   "
        f"{report['prefixes']['total']:>10} total",
        f"Identifiers      {ids['registered']:>10} registered, {ids['updated']} updated, "
        f"{ids['deleted']} deleted; {ids['heldAtEnd']} held at month end",
        f"Resolutions      {report['resolutions']:>10}{sampled}",
        f"Errors (5xx)     {report['errors']:>10}{sampled}",
        _availability(report),
        f"Reporting        {box['pending']:>10} events pending, {box['delivered']} delivered"
        + (f", oldest pending since {box['oldestPending']}" if box["oldestPending"] else ""),
    ]
    if ids["topEnterprises"]:
        lines += ["", "Most active enterprises (registered / updated / deleted):"]
        lines += [
            f"  {e['prefix']:<16} {e['registered']:>8} {e['updated']:>8} {e['deleted']:>8}  "
            f"{e['enterprise']}"
            for e in ids["topEnterprises"]
        ]
    return "\n".join(lines) + "\n"
