"""Device liveness: heartbeats, offline marks, and the values a device's record carries
about them (lastSeen, online, batteryLevel).

The ``devices`` table holds liveness, so heartbeats update rows in batches and rewrite the
record's liveness values only when they change in a way a reader would notice.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import OPERATOR
from app.errors import InvalidRequest
from app.registry import clock
from app.registry.devices import hardware
from app.registry.identifiers.handles import put_record
from app.registry.templates.bundled import DEVICE
from app.storage import devices as repo
from app.storage.models import Device
from resolver.errors import HandleNotFound
from resolver.identifier import parse_handle
from resolver.values import HandleValue

# The bundled `device` template's items (app/registry/templates/bundled.py), so a device's
# record reads with that template's labels on /api/v1/identifiers.
TEMPLATE_ID = f"{DEVICE['id']}@1"
ITEMS: dict[str, int] = {item["name"]: item["index"] for item in DEVICE["items"]}


@dataclass(frozen=True)
class Liveness:
    """Tuning of how liveness reaches the record."""

    ttl: int = 60  # short, so caches elsewhere do not show stale liveness for long
    republish_after: timedelta = timedelta(seconds=30)


@dataclass(frozen=True)
class Heartbeat:
    prefix: str
    hardware_id: str
    at: datetime
    status: Mapping[str, Any] | None = None
    battery: int | None = None


def text_value(name: str, text: str, ttl: int = 86400) -> HandleValue:
    return HandleValue(index=ITEMS[name], type=name, format="string", value=text, ttl=ttl)


def stamp(moment: datetime) -> str:
    return clock.handle_timestamp(moment)


def battery_level(value: Any, where: str = "batteryLevel") -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
        raise InvalidRequest(f"{where} must be a number from 0 to 100, not {value!r}")
    return round(value)


def liveness_values(
    *, last_seen: datetime, online: bool, battery: int | None, ttl: int
) -> list[HandleValue]:
    values = [
        text_value("lastSeen", stamp(last_seen), ttl),
        text_value("online", "true" if online else "false", ttl),
    ]
    if battery is not None:
        values.append(text_value("batteryLevel", str(battery), ttl))
    return values


@dataclass
class HeartbeatOutcome:
    applied: int = 0
    published: int = 0
    unknown: list[Heartbeat] = field(default_factory=list)


async def apply_heartbeats(
    session: AsyncSession, beats: Sequence[Heartbeat], *, node_prefix: str, liveness: Liveness
) -> HeartbeatOutcome:
    """Apply a batch of heartbeats: one row update each, a record rewrite only on a change a
    reader would notice (coming online, a new battery level, or lastSeen older than
    ``liveness.republish_after``). Heartbeats of unknown devices create nothing."""
    outcome = HeartbeatOutcome()
    by_prefix: dict[str, list[Heartbeat]] = {}
    for beat in beats:
        by_prefix.setdefault(beat.prefix, []).append(beat)
    changes = []
    for prefix, group in by_prefix.items():
        wanted = {beat.hardware_id: hardware.candidates(beat.hardware_id) for beat in group}
        forms = {form for found in wanted.values() for form in found}
        rows = await repo.devices_by_hardware_id(session, prefix=prefix, hardware_ids=forms)
        by_id = {row.hardware_id: row for row in rows}
        for beat in group:
            row = next((by_id[f] for f in wanted[beat.hardware_id] if f in by_id), None)
            if row is None:
                outcome.unknown.append(beat)
                continue
            changes.append(
                await _beat(
                    session, row, beat, node_prefix=node_prefix, liveness=liveness, outcome=outcome
                )
            )
    await repo.update_devices(session, changes)
    outcome.applied = len(changes)
    return outcome


async def _beat(
    session: AsyncSession,
    row: Device,
    beat: Heartbeat,
    *,
    node_prefix: str,
    liveness: Liveness,
    outcome: HeartbeatOutcome,
) -> dict[str, Any]:
    last_seen = max(clock.as_utc(row.last_seen), beat.at)
    battery = beat.battery if beat.battery is not None else row.battery
    change: dict[str, Any] = {"id": row.id, "last_seen": last_seen, "online": True}
    if beat.status is not None:
        change["status"] = dict(beat.status)
    if battery != row.battery:
        change["battery"] = battery
    stale = last_seen - clock.as_utc(row.published_at) >= liveness.republish_after
    if not row.online or battery != row.battery or stale:
        values = liveness_values(
            last_seen=last_seen, online=True, battery=battery, ttl=liveness.ttl
        )
        await write_liveness(session, row.handle, values, node_prefix=node_prefix)
        change["published_at"] = last_seen
        outcome.published += 1
    return change


async def mark_offline(
    session: AsyncSession, *, silent_for: timedelta, node_prefix: str, liveness: Liveness
) -> list[str]:
    """Mark devices silent for longer than ``silent_for`` offline; returns their identifiers."""
    now = clock.now()
    rows = await repo.silent_devices(session, since=now - silent_for)
    await _offline(session, rows, now=now, node_prefix=node_prefix, liveness=liveness)
    return [row.handle for row in rows]


async def mark_device_offline(
    session: AsyncSession,
    *,
    prefix: str,
    kind: str,
    hardware_id: str,
    node_prefix: str,
    liveness: Liveness,
) -> bool:
    """A network reported the device gone (NB-IoT offline push); False when it is unknown."""
    row = await repo.device(
        session, prefix=prefix, kind=kind, hardware_id=hardware.normalise(kind, hardware_id)
    )
    if row is None:
        return False
    await _offline(session, [row], now=clock.now(), node_prefix=node_prefix, liveness=liveness)
    return True


async def _offline(
    session: AsyncSession,
    rows: Sequence[Device],
    *,
    now: datetime,
    node_prefix: str,
    liveness: Liveness,
) -> None:
    for row in rows:
        values = liveness_values(
            last_seen=clock.as_utc(row.last_seen),
            online=False,
            battery=row.battery,
            ttl=liveness.ttl,
        )
        await write_liveness(session, row.handle, values, node_prefix=node_prefix)
    await repo.update_devices(
        session, [{"id": row.id, "online": False, "published_at": now} for row in rows]
    )


async def write_liveness(
    session: AsyncSession, handle: str, values: Sequence[HandleValue], *, node_prefix: str
) -> None:
    """The one place liveness reaches a device's record (through the normal write path, so
    cache invalidation applies). Liveness changes are not history worth keeping."""
    # A record the enterprise deleted stays deleted; liveness stays in the devices table.
    with contextlib.suppress(HandleNotFound):
        await put_record(
            session,
            parse_handle(handle),
            values,
            principal=OPERATOR,
            node_prefix=node_prefix,
            indexes={v.index for v in values},
            history=False,
        )
