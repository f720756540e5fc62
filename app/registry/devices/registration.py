"""Devices: registration by hardware id.

A device is an identifier ``<prefix>/DEV-<kind>-<hardware id>`` (see ``hardware.device_suffix``)
whose record follows the ``device`` template (index 1001 ``TEMPLATE`` = ``device@1``, items from
2000). The ``devices`` table is the idempotency key of registration; liveness (heartbeats,
offline) is ``app/registry/devices/liveness.py``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import Principal
from app.errors import InvalidRequest
from app.registry import clock
from app.registry.devices import hardware
from app.registry.devices.liveness import (
    TEMPLATE_ID,
    Liveness,
    battery_level,
    liveness_values,
    stamp,
    text_value,
)
from app.registry.identifiers.handles import authorize_write, new_record_values, put_record
from app.storage import devices as repo
from app.storage.handles import insert_many
from app.storage.new_records import NewRecord
from resolver.errors import HandleNotFound
from resolver.identifier import Handle, parse_handle
from resolver.values import HandleValue

# What a device may say about itself; the rest the node records.
DEVICE_ATTRIBUTES = ("model", "vendor", "location", "batteryLevel")
NETWORKS = ("mqtt", "lorawan", "nbiot")
MAX_ATTRIBUTE_CHARS = 256


@dataclass(frozen=True)
class Registration:
    """What a device (or the gateway fronting it) asks to register."""

    hardware_id: str
    hardware_id_type: str
    attributes: Mapping[str, Any] = field(default_factory=dict)
    network: str = "mqtt"
    gateway_id: str | None = None


@dataclass(frozen=True)
class Registered:
    handle: str
    created: bool


def _attribute_values(attributes: Any) -> tuple[list[HandleValue], int | None]:
    """The template values of what the device sent about itself, validated before any write."""
    if not isinstance(attributes, Mapping):
        raise InvalidRequest("attributes must be a JSON object")
    unknown = sorted(str(name) for name in attributes if name not in DEVICE_ATTRIBUTES)
    if unknown:
        raise InvalidRequest(
            f"unknown attributes: {', '.join(unknown)} "
            f"(a device may send {', '.join(DEVICE_ATTRIBUTES)})"
        )
    values = []
    battery = None
    for name, raw in attributes.items():
        if name == "batteryLevel":
            battery = battery_level(raw, "attributes.batteryLevel")
            continue
        if not isinstance(raw, str | int | float) or isinstance(raw, bool):
            raise InvalidRequest(f"attributes.{name} must be a string or a number")
        text = str(raw)
        if len(text) > MAX_ATTRIBUTE_CHARS:
            raise InvalidRequest(f"attributes.{name} is longer than {MAX_ATTRIBUTE_CHARS} chars")
        values.append(text_value(name, text))
    return values, battery


async def register_device(
    session: AsyncSession,
    principal: Principal,
    prefix: str,
    registration: Registration,
    *,
    node_prefix: str,
    liveness: Liveness,
) -> Registered:
    """Register a device, or on a repeat return its identifier and update its attributes.

    The same (prefix, kind, hardware id) always yields the same identifier.
    """
    plan = await plan_registration(
        session, principal, prefix, registration, node_prefix=node_prefix
    )
    return await apply_registration(
        session, principal, plan, node_prefix=node_prefix, liveness=liveness
    )


@dataclass(frozen=True)
class Plan:
    """A registration checked in full (nothing written yet)."""

    handle: Handle
    kind: str
    canonical: str
    attributes: list[HandleValue]
    battery: int | None
    registration: Registration


async def plan_registration(
    session: AsyncSession,
    principal: Principal,
    prefix: str,
    registration: Registration,
    *,
    node_prefix: str,
) -> Plan:
    """Every check a registration needs, before any write: what it refuses, it refuses here."""
    kind = registration.hardware_id_type
    canonical = hardware.normalise(kind, registration.hardware_id)
    attributes, battery = _attribute_values(registration.attributes)
    if registration.network not in NETWORKS:
        raise InvalidRequest(f"network must be one of {', '.join(NETWORKS)}")
    handle = parse_handle(f"{prefix}/{hardware.device_suffix(kind, canonical)}")
    await authorize_write(session, principal, handle, node_prefix=node_prefix)
    return Plan(handle, kind, canonical, attributes, battery, registration)


async def apply_registration(
    session: AsyncSession,
    principal: Principal,
    plan: Plan,
    *,
    node_prefix: str,
    liveness: Liveness,
) -> Registered:
    """The writes of a checked registration."""
    now = clock.now()
    created = await repo.claim_device(session, _device_row(plan, now))
    return await _write_record(
        session,
        principal,
        plan,
        created=created,
        now=now,
        node_prefix=node_prefix,
        liveness=liveness,
    )


async def apply_registrations(
    session: AsyncSession,
    planned: Sequence[tuple[Principal, Plan]],
    *,
    node_prefix: str,
    liveness: Liveness,
) -> list[Registered]:
    """The writes of many checked registrations, one result each, in order.

    Set-based, as a gateway's batch needs: the devices are claimed in one statement and the
    records of new ones created through the bulk path (``insert_many``: records, search
    rows, history and references in a few statements). Repeats, and new devices whose
    identifier the enterprise had already written itself, go one by one as in
    :func:`apply_registration`.
    """
    now = clock.now()
    claimed = await repo.claim_devices(session, [_device_row(plan, now) for _, plan in planned])
    first: dict[str, tuple[Principal, Plan]] = {}
    for principal, plan in planned:
        if str(plan.handle) in claimed:
            first.setdefault(str(plan.handle), (principal, plan))
    written: set[str] = set()
    for actor, group in _by_actor(first.values()).items():
        records = [
            NewRecord(
                str(plan.handle),
                plan.handle.prefix,
                new_record_values(plan.handle, _record_values(plan, now, liveness), now),
            )
            for plan in group
        ]
        written |= (await insert_many(session, records, now=now, actor=actor)).created
    results = []
    for principal, plan in planned:
        name = str(plan.handle)
        new = name in first and first[name][1] is plan
        if new and name in written:
            results.append(Registered(name, created=True))
            continue
        results.append(
            await _write_record(
                session,
                principal,
                plan,
                created=new,
                now=now,
                node_prefix=node_prefix,
                liveness=liveness,
            )
        )
    return results


def _by_actor(planned: Iterable[tuple[Principal, Plan]]) -> dict[str, list[Plan]]:
    groups: dict[str, list[Plan]] = {}
    for principal, plan in planned:
        groups.setdefault(principal.actor, []).append(plan)
    return groups


def _device_row(plan: Plan, now: datetime) -> dict[str, Any]:
    return {
        "prefix": plan.handle.prefix,
        "hardware_id_type": plan.kind,
        "hardware_id": plan.canonical,
        "handle": str(plan.handle),
        "network": plan.registration.network,
        "first_seen": now,
        "last_seen": now,
        "published_at": now,
        "online": True,
        "battery": plan.battery,
    }


def _changed_values(plan: Plan, now: datetime, liveness: Liveness) -> list[HandleValue]:
    """What every registration (re)writes: the device's attributes and its liveness."""
    live = liveness_values(last_seen=now, online=True, battery=plan.battery, ttl=liveness.ttl)
    changed = [*plan.attributes, *live]
    if plan.registration.gateway_id is not None:
        changed.append(text_value("gatewayId", plan.registration.gateway_id))
    return changed


def _record_values(plan: Plan, now: datetime, liveness: Liveness) -> list[HandleValue]:
    """The whole record of a device registered now."""
    identity = [
        HandleValue(index=1001, type="TEMPLATE", format="string", value=TEMPLATE_ID),
        text_value("hardwareId", plan.canonical),
        text_value("hardwareIdType", plan.kind),
        text_value("network", plan.registration.network),
        text_value("firstSeen", stamp(now)),
    ]
    return [*identity, *_changed_values(plan, now, liveness)]


async def _write_record(
    session: AsyncSession,
    principal: Principal,
    plan: Plan,
    *,
    created: bool,
    now: datetime,
    node_prefix: str,
    liveness: Liveness,
) -> Registered:
    """A registration's record, one device at a time: on a repeat the attributes and
    liveness are updated; a new device's record is written whole."""
    handle = plan.handle
    if not created:
        await _seen_again(
            session,
            prefix=handle.prefix,
            kind=plan.kind,
            canonical=plan.canonical,
            now=now,
            battery=plan.battery,
        )
        changed = _changed_values(plan, now, liveness)
        try:
            await put_record(
                session,
                handle,
                changed,
                principal=principal,
                node_prefix=node_prefix,
                indexes={v.index for v in changed},
            )
            return Registered(str(handle), created=False)
        except HandleNotFound:
            pass  # the enterprise deleted the record; write it afresh below
    await put_record(
        session,
        handle,
        _record_values(plan, now, liveness),
        principal=principal,
        node_prefix=node_prefix,
    )
    return Registered(str(handle), created=created)


async def _seen_again(
    session: AsyncSession,
    *,
    prefix: str,
    kind: str,
    canonical: str,
    now: datetime,
    battery: int | None,
) -> None:
    row = await repo.device(session, prefix=prefix, kind=kind, hardware_id=canonical)
    if row is None:
        return
    change: dict[str, Any] = {"id": row.id, "last_seen": now, "online": True, "published_at": now}
    if battery is not None:
        change["battery"] = battery
    await repo.update_devices(session, [change])
