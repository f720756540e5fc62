"""SQL for provisioning keys, devices and their liveness, and mapped LoRaWAN applications."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.storage.conflicts import insert_new
from app.storage.copy import is_postgres
from app.storage.models import Device, LorawanApplication, NbiotPlatform, ProvisioningKey


async def add_provisioning_key(session: AsyncSession, row: ProvisioningKey) -> None:
    session.add(row)
    await session.flush()


async def provisioning_keys_of(session: AsyncSession, enterprise_id: int) -> list[ProvisioningKey]:
    rows = await session.execute(
        select(ProvisioningKey)
        .where(ProvisioningKey.enterprise_id == enterprise_id)
        .order_by(ProvisioningKey.id)
    )
    return list(rows.scalars())


async def active_provisioning_key(session: AsyncSession, key: str) -> ProvisioningKey | None:
    """The key unless it is unknown or revoked (read on every use: revocation is immediate)."""
    return (
        await session.execute(
            select(ProvisioningKey).where(
                ProvisioningKey.key == key, ProvisioningKey.revoked_at.is_(None)
            )
        )
    ).scalar_one_or_none()


async def revoke_provisioning_key(
    session: AsyncSession, *, enterprise_id: int, key: str, now: datetime
) -> bool:
    """Revoke the key; False when the enterprise has no such key."""
    found = (
        await session.execute(
            select(ProvisioningKey).where(
                ProvisioningKey.enterprise_id == enterprise_id, ProvisioningKey.key == key
            )
        )
    ).scalar_one_or_none()
    if found is None:
        return False
    if found.revoked_at is None:
        found.revoked_at = now
        await session.flush()
    return True


async def claim_device(session: AsyncSession, values: dict[str, Any]) -> bool:
    """Insert the device; False when it is already registered (the idempotency check).

    A concurrent registration of the same device waits for the other to commit, then
    finds it (PostgreSQL), or is serialised by SQLite's write lock."""
    return values["handle"] in await claim_devices(session, [values])


# Rows per multi-row insert: 10 columns each stays far below every driver's parameter limit.
CLAIM_SLICE = 1000


async def claim_devices(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Insert many devices at once; the handles of those inserted (the others were already
    registered, or repeat an earlier row of ``rows``). Same guarantees as :func:`claim_device`.
    Each row has exactly the columns of ``CLAIM_COLUMNS``."""
    if is_postgres(session):
        # One statement of one shape whatever the number of rows, so it is compiled once:
        # a multi-row VALUES list was compiled afresh for every batch size, a sixth of a
        # gateway's CPU under load.
        columns = {name: [row[name] for row in rows] for name in CLAIM_COLUMNS}
        return set((await session.execute(_CLAIM_UNNESTED, columns)).scalars())
    inserted: set[str] = set()
    for start in range(0, len(rows), CLAIM_SLICE):
        part = rows[start : start + CLAIM_SLICE]
        statement = insert_new(session, Device).values(list(part)).returning(Device.handle)
        inserted.update((await session.execute(statement)).scalars())
    return inserted


CLAIM_COLUMNS = {  # column -> PostgreSQL type
    "prefix": "text",
    "hardware_id_type": "text",
    "hardware_id": "text",
    "handle": "text",
    "network": "text",
    "first_seen": "timestamptz",
    "last_seen": "timestamptz",
    "published_at": "timestamptz",
    "online": "boolean",
    "battery": "integer",
}
_CLAIM_UNNESTED = text(
    f"INSERT INTO {Device.__tablename__} ({', '.join(CLAIM_COLUMNS)}) "  # noqa: S608
    "SELECT * FROM unnest("
    + ", ".join(f"CAST(:{name} AS {kind}[])" for name, kind in CLAIM_COLUMNS.items())
    + ") ON CONFLICT DO NOTHING RETURNING handle"
)


async def device(
    session: AsyncSession, *, prefix: str, kind: str, hardware_id: str
) -> Device | None:
    return (
        await session.execute(
            select(Device).where(
                Device.prefix == prefix,
                Device.hardware_id_type == kind,
                Device.hardware_id == hardware_id,
            )
        )
    ).scalar_one_or_none()


async def devices_by_hardware_id(
    session: AsyncSession, *, prefix: str, hardware_ids: Collection[str]
) -> list[Device]:
    rows = await session.execute(
        select(Device)
        .where(Device.prefix == prefix, Device.hardware_id.in_(list(hardware_ids)))
        .order_by(Device.id)
    )
    return list(rows.scalars())


async def update_devices(session: AsyncSession, changes: Sequence[dict[str, Any]]) -> None:
    """Many devices in one statement batch (each dict: ``id`` plus the columns to set)."""
    if changes:
        await session.execute(update(Device), list(changes))


async def silent_devices(session: AsyncSession, *, since: datetime) -> list[Device]:
    """Devices still marked online whose last sign of life is older than ``since``."""
    rows = await session.execute(
        select(Device).where(Device.online.is_(True), Device.last_seen < since).limit(1000)
    )
    return list(rows.scalars())


async def map_lorawan_application(session: AsyncSession, row: LorawanApplication) -> bool:
    """False when the application is already mapped."""
    try:
        async with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return False
    return True


async def lorawan_application(
    session: AsyncSession, application_id: str
) -> tuple[LorawanApplication, ProvisioningKey] | None:
    found = (
        await session.execute(
            select(LorawanApplication, ProvisioningKey)
            .join(ProvisioningKey, ProvisioningKey.id == LorawanApplication.provisioning_key_id)
            .where(LorawanApplication.application_id == application_id)
        )
    ).first()
    return (found[0], found[1]) if found is not None else None


async def save_nbiot_platform(session: AsyncSession, row: NbiotPlatform) -> None:
    """Create or replace the enterprise's configuration of the platform."""
    await session.merge(row)
    await session.flush()


async def nbiot_platform(
    session: AsyncSession, *, prefix: str, platform: str
) -> tuple[NbiotPlatform, ProvisioningKey] | None:
    found = (
        await session.execute(
            select(NbiotPlatform, ProvisioningKey)
            .join(ProvisioningKey, ProvisioningKey.id == NbiotPlatform.provisioning_key_id)
            .where(NbiotPlatform.prefix == prefix, NbiotPlatform.platform == platform)
        )
    ).first()
    return (found[0], found[1]) if found is not None else None
