"""Registrations queued by the gateways, taken a batch per transaction (set-based writes)."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from app.registry.devices import Registered, Registration
from app.settings import Settings
from app.storage.models import Device
from gateways.devices import DeviceService, Refused, Request
from tests.conftest import bearer, create_enterprise, create_provisioning_key


async def _provisioned(client: httpx.AsyncClient, name: str) -> dict[str, Any]:
    plant = await create_enterprise(client, name)
    created = await create_provisioning_key(client, plant)
    return {**plant, "key": created["key"], "secret": created["secret"]}


def _request(plant: dict[str, Any], serial: str, **attributes: Any) -> Request:
    registration = Registration(
        hardware_id=serial, hardware_id_type="serial", attributes=attributes
    )
    return Request(plant["prefix"], plant["key"], plant["secret"], registration)


def _values(record: dict[str, Any]) -> dict[str, str]:
    return {v["type"]: v["data"]["value"] for v in record["values"]}


async def test_a_mixed_batch_registers_each_device_once(
    app: Any, client: httpx.AsyncClient, settings: Settings
) -> None:
    node = app.state.node
    service = DeviceService(node.database, settings, node.resolver.cache)
    dairy = await _provisioned(client, "Dairy")
    bakery = await _provisioned(client, "Bakery")
    fresh = f"{dairy['prefix']}/DEV-serial-NEW-1"
    # Looked up before it exists: the node now caches "not found" for it.
    assert (await client.get(f"/api/handles/{fresh}")).status_code == 404
    # Registered earlier, so the batch below repeats it.
    [earlier] = await service.register_devices([_request(dairy, "OLD-1", model="M1")])
    assert earlier == Registered(f"{dairy['prefix']}/DEV-serial-OLD-1", created=True)
    # The enterprise wrote this device's identifier itself before the device turned up.
    own = f"{dairy['prefix']}/DEV-serial-OWN-1"
    put = await client.put(
        f"/api/handles/{own}",
        json={"values": [{"index": 1, "type": "NOTE", "data": "hand-written"}]},
        headers=bearer(dairy),
    )
    assert put.status_code == 201, put.text
    wrong = Request(
        dairy["prefix"], dairy["key"], "not-the-secret", Registration("BAD-1", "serial")
    )

    results = await service.register_devices(
        [
            _request(dairy, "NEW-1", model="M2"),
            _request(bakery, "OVEN-7", model="Oven"),
            _request(dairy, "OLD-1", model="M1b"),
            wrong,
            _request(dairy, "NEW-1", model="M2b"),  # the same device twice in one batch
            _request(dairy, "OWN-1"),
        ]
    )

    new, oven, old, refused, again, own_result = results
    assert new == Registered(fresh, created=True)
    assert oven == Registered(f"{bakery['prefix']}/DEV-serial-OVEN-7", created=True)
    assert old == Registered(earlier.handle, created=False)
    assert isinstance(refused, Refused)
    assert refused.hardware_id == "BAD-1"
    assert again == Registered(fresh, created=False)
    assert own_result == Registered(own, created=True)

    record = (await client.get(f"/api/handles/{fresh}")).json()  # not the cached 404
    assert _values(record)["model"] == "M2b"  # the later of the two requests wins
    assert _values(record)["hardwareId"] == "NEW-1"
    assert _values(record)["online"] == "true"
    assert _values((await client.get(f"/api/handles/{earlier.handle}")).json())["model"] == "M1b"
    owned = _values((await client.get(f"/api/handles/{own}")).json())
    assert owned["hardwareId"] == "OWN-1"
    assert "NOTE" not in owned
    oven_record = (await client.get(f"/api/handles/{oven.handle}")).json()
    admin = next(v for v in oven_record["values"] if v["type"] == "HS_ADMIN")
    assert admin["data"]["value"]["handle"] == f"{bakery['prefix']}/ADMIN"

    history = await client.get(f"/api/v1/identifiers/{fresh}/history", headers=bearer(dairy))
    assert history.status_code == 200, history.text
    operations = [entry["operation"] for entry in history.json()["changes"]]
    assert operations == ["create", "update"]
    async with node.database.read_session() as session:
        rows = (await session.execute(select(Device.hardware_id, Device.online))).all()
    assert sorted(rows) == [("NEW-1", True), ("OLD-1", True), ("OVEN-7", True), ("OWN-1", True)]
