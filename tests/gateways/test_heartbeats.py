"""Heartbeats: batched, shown when resolving, online -> offline -> online, unknown refused."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select

from app.settings import Settings
from app.storage.models import Device as DeviceRow
from tests.gateways.conftest import Device, register_body


@pytest.fixture
def gateway_settings(gateway_settings: Settings) -> Settings:
    return gateway_settings.model_copy(
        update={"device_offline_after": 1.5, "heartbeat_flush_interval": 0.2}
    )


async def liveness(http: httpx.AsyncClient, handle: str) -> dict[str, str]:
    record = (await http.get(f"/api/handles/{handle}")).json()
    return {
        v["type"]: v["data"]["value"]
        for v in record["values"]
        if v["type"] in {"lastSeen", "online", "batteryLevel", "firstSeen"}
    }


async def eventually(check: Any, wait: float = 10) -> None:
    async with asyncio.timeout(wait):
        while not await check():  # noqa: ASYNC110 - polling what a user would see
            await asyncio.sleep(0.1)


async def test_heartbeat_online_offline_online(
    device: Device, enterprise: dict[str, Any], http: httpx.AsyncClient
) -> None:
    _, reply = await device.request(device.topic("SN-HB-1"), register_body(enterprise))
    handle = reply["handle"]
    assert (await liveness(http, handle))["online"] == "true"

    await device.client.publish(
        device.topic("SN-HB-1", "heartbeat"),
        orjson.dumps({"status": {"batteryLevel": 87, "temp": 41.5}}),
        qos=1,
    )

    async def battery_shown() -> bool:
        return (await liveness(http, handle)).get("batteryLevel") == "87"

    await eventually(battery_shown)

    async def offline() -> bool:
        return (await liveness(http, handle))["online"] == "false"

    await eventually(offline)  # silent for longer than 1.5 s

    await device.client.publish(device.topic("SN-HB-1", "heartbeat"), b"", qos=1)

    async def back_online() -> bool:
        return (await liveness(http, handle))["online"] == "true"

    await eventually(back_online)
    shown = await liveness(http, handle)
    assert shown["lastSeen"] >= shown["firstSeen"]

    # Liveness rewrote the record (battery, offline, online again): none of it is history.
    history = (await http.get(f"/api/v1/identifiers/{handle}/history")).json()
    assert [c["operation"] for c in history["changes"]] == ["create"], history
    # The record reads with the bundled device template's labels.
    native = (await http.get(f"/api/v1/identifiers/{handle}")).json()
    assert native["template"]["id"] == "device", native
    assert native["attributes"]["online"]["value"] is True
    assert native["attributes"]["batteryLevel"]["label_en"] == "Battery level (%)"


@pytest.mark.slow  # waits for the heartbeat flusher
async def test_heartbeats_are_written_in_batches(
    device: Device, enterprise: dict[str, Any], gateway_app: Any
) -> None:
    machines = [{"hardwareId": f"HB-{n:03d}", "hardwareIdType": "serial"} for n in range(200)]
    topic = f"{device.root}/{device.prefix}/gateway/box/register"
    outcome, _ = await device.request(topic, {**register_body(enterprise), "devices": machines})
    assert outcome == "accepted"
    counters = gateway_app.state.gateway.counters
    writes_before = counters.heartbeat_writes

    for machine in machines:
        await device.client.publish(
            device.topic(machine["hardwareId"], "heartbeat"),
            orjson.dumps({"status": {"state": "running"}}),
            qos=1,
        )

    async def all_applied() -> bool:
        return bool(counters.heartbeats >= 200)

    await eventually(all_applied)
    assert counters.heartbeats == 200
    assert counters.heartbeat_writes - writes_before < 20  # not one transaction per message
    database = gateway_app.state.node.database
    async with database.read_session() as session:
        rows = (
            (await session.execute(select(DeviceRow).where(DeviceRow.prefix == device.prefix)))
            .scalars()
            .all()
        )
    assert len(rows) == 200
    assert all(row.status == {"state": "running"} for row in rows)


async def test_unknown_device_heartbeat_is_refused_and_creates_nothing(
    device: Device, enterprise: dict[str, Any], http: httpx.AsyncClient, gateway_app: Any
) -> None:
    outcome, reply = await device.request(device.topic("GHOST-1", "heartbeat"), b"{}")
    assert outcome == "rejected"
    assert reply["errorCode"] == "DeviceNotFound"
    assert gateway_app.state.gateway.counters.heartbeats_unknown == 1
    missing = await http.get(f"/api/handles/{enterprise['prefix']}/DEV-serial-GHOST-1")
    assert missing.status_code == 404

    bad = await device.request(device.topic("GHOST-1", "heartbeat"), b'{"ts": "yesterday"}')
    assert bad[0] == "rejected"
    assert bad[1]["errorCode"] == "MalformedMessage"
