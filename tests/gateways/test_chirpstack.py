"""ChirpStack v4 events (the real JSON in tests/fixtures/chirpstack) -> devices and liveness."""

from __future__ import annotations

import asyncio
from typing import Any, NamedTuple

import httpx
import orjson
import pytest
from sqlalchemy import select

from app.settings import Settings
from app.storage.models import Device as DeviceRow
from tests.app.test_metrics import grown, scrape
from tests.conftest import bearer
from tests.gateways.conftest import Device, fixture_json, listening_to_chirpstack

APPLICATION = "3f9a6c2e-1d47-4b8a-a0e5-6c7b2d9e4f10"
DEV_EUI = "a84041000181c2f7"


@pytest.fixture
def gateway_settings(gateway_settings: Settings, chirpstack_root: str) -> Settings:
    return listening_to_chirpstack(gateway_settings, chirpstack_root)


class Scene(NamedTuple):
    """What a ChirpStack test works with: a device's MQTT client, its enterprise, the node's
    HTTP API, the node itself, and the topic root ChirpStack publishes under."""

    device: Device
    enterprise: dict[str, Any]
    http: httpx.AsyncClient
    gateway_app: Any
    chirpstack_root: str


@pytest.fixture
def scene(
    device: Device,
    enterprise: dict[str, Any],
    http: httpx.AsyncClient,
    gateway_app: Any,
    chirpstack_root: str,
) -> Scene:
    return Scene(device, enterprise, http, gateway_app, chirpstack_root)


async def publish(device: Device, root: str, name: str) -> dict[str, Any]:
    event = fixture_json(f"chirpstack/{name}")
    info = event["deviceInfo"]
    kind = name.split("-")[0].split(".")[0]
    topic = f"{root}/application/{info['applicationId']}/device/{info['devEui']}/event/{kind}"
    await device.client.publish(topic, orjson.dumps(event), qos=1)
    return event


async def until(gateway_app: Any, **expected: int) -> None:
    counters = gateway_app.state.gateway.counters
    async with asyncio.timeout(10):
        while any(getattr(counters, k) < v for k, v in expected.items()):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    await gateway_app.state.gateway.heartbeats.flush()


async def map_application(http: httpx.AsyncClient, enterprise: dict[str, Any]) -> None:
    mapped = await http.post(
        f"/api/v1/enterprises/{enterprise['prefix']}/lorawan/applications",
        json={"applicationId": APPLICATION, "provisionKey": enterprise["key"]},
        headers=bearer(enterprise),
    )
    assert mapped.status_code == 201, mapped.text


async def record(http: httpx.AsyncClient, handle: str) -> dict[str, str]:
    answer = await http.get(f"/api/handles/{handle}")
    assert answer.status_code == 200, answer.text
    return {v["type"]: v["data"]["value"] for v in answer.json()["values"]}


async def test_join_up_status_with_duplicates(scene: Scene) -> None:
    device, enterprise, http, gateway_app, chirpstack_root = scene
    await map_application(http, enterprise)
    handle = f"{enterprise['prefix']}/DEV-deveui-A84041000181C2F7"
    before = await scrape(http)

    await publish(device, chirpstack_root, "join-unmapped-application.json")
    await until(gateway_app, lorawan_unmapped=1)
    await publish(device, chirpstack_root, "join.json")
    await until(gateway_app, lorawan_events=1)
    joined = await record(http, handle)
    assert joined["network"] == "lorawan"
    assert joined["hardwareIdType"] == "deveui"
    assert joined["model"] == "temp-humidity-class-a"

    for name in ("up-first.json", "up.json", "up-duplicate.json", "status.json"):
        await publish(device, chirpstack_root, name)
    await until(gateway_app, lorawan_events=4, lorawan_duplicates=1)

    shown = await record(http, handle)
    assert shown["batteryLevel"] == "76"
    assert shown["online"] == "true"
    database = gateway_app.state.node.database
    async with database.read_session() as session:
        rows = (await session.execute(select(DeviceRow))).scalars().all()
    assert [(r.hardware_id, r.network) for r in rows] == [("A84041000181C2F7", "lorawan")]
    assert rows[0].battery == 76
    counters = gateway_app.state.gateway.counters
    assert counters.lorawan_events == 4  # join, two distinct uplinks, status
    assert counters.registered == 1
    after = await scrape(http)
    assert grown(before, after, "idnode_registrations_total", channel="lorawan") == 1
    assert grown(before, after, "idnode_registrations_total", channel="mqtt") == 0
    assert (
        grown(before, after, "idnode_mqtt_messages_total", kind="lorawan", result="duplicate") == 1
    )
    # The unmapped application's device was never created.
    missing = await http.get(f"/api/handles/{enterprise['prefix']}/DEV-deveui-A84041000181FFFF")
    assert missing.status_code == 404


async def test_first_uplink_registers_a_device_that_joined_unseen(scene: Scene) -> None:
    device, enterprise, http, gateway_app, chirpstack_root = scene
    await map_application(http, enterprise)
    await publish(device, chirpstack_root, "up-first.json")  # fCnt, adr, object absent
    await until(gateway_app, registered=1)
    shown = await record(http, f"{enterprise['prefix']}/DEV-deveui-{DEV_EUI.upper()}")
    assert shown["online"] == "true"


async def test_revoked_key_stops_the_application_registering(scene: Scene) -> None:
    device, enterprise, http, gateway_app, chirpstack_root = scene
    await map_application(http, enterprise)
    await http.delete(
        f"/api/v1/enterprises/{enterprise['prefix']}/provisioning-keys/{enterprise['key']}",
        headers=bearer(enterprise),
    )
    await publish(device, chirpstack_root, "join.json")
    await until(gateway_app, lorawan_unmapped=1)
    missing = await http.get(f"/api/handles/{enterprise['prefix']}/DEV-deveui-{DEV_EUI.upper()}")
    assert missing.status_code == 404


async def test_mapping_refuses_bad_requests(
    http: httpx.AsyncClient, enterprise: dict[str, Any]
) -> None:
    url = f"/api/v1/enterprises/{enterprise['prefix']}/lorawan/applications"
    not_uuid = await http.post(
        url,
        json={"applicationId": "app-1", "provisionKey": enterprise["key"]},
        headers=bearer(enterprise),
    )
    assert not_uuid.status_code == 400
    assert "not a UUID" in not_uuid.json()["detail"]
    bad_key = await http.post(
        url,
        json={"applicationId": APPLICATION, "provisionKey": "pk_nope"},
        headers=bearer(enterprise),
    )
    assert bad_key.status_code == 400
    await map_application(http, enterprise)
    again = await http.post(
        url,
        json={"applicationId": APPLICATION, "provisionKey": enterprise["key"]},
        headers=bearer(enterprise),
    )
    assert again.status_code == 409


async def test_malformed_event_is_counted_and_the_loop_goes_on(scene: Scene) -> None:
    device, enterprise, http, gateway_app, chirpstack_root = scene
    await map_application(http, enterprise)
    topic = f"{chirpstack_root}/application/{APPLICATION}/device/{DEV_EUI}/event/up"
    await device.client.publish(topic, b"{not json", qos=1)
    await until(gateway_app, malformed=1)
    await publish(device, chirpstack_root, "join.json")
    await until(gateway_app, registered=1)


async def test_event_with_control_characters_is_malformed_and_creates_nothing(scene: Scene) -> None:
    device, enterprise, http, gateway_app, chirpstack_root = scene
    await map_application(http, enterprise)
    event = fixture_json("chirpstack/join.json")
    event["deviceInfo"]["deviceProfileName"] = "class\x00a"
    info = event["deviceInfo"]
    topic = f"{chirpstack_root}/application/{info['applicationId']}/device/{info['devEui']}"
    await device.client.publish(f"{topic}/event/join", orjson.dumps(event), qos=1)
    await until(gateway_app, malformed=1)
    handle = f"{enterprise['prefix']}/DEV-deveui-A84041000181C2F7"
    assert (await http.get(f"/api/handles/{handle}")).status_code == 404
    await publish(device, chirpstack_root, "join.json")
    await until(gateway_app, registered=1)
