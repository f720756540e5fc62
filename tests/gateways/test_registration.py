"""MQTT registration: accepted, idempotent, and every way it is rejected."""

from __future__ import annotations

import secrets
from typing import Any

import aiomqtt
import httpx
import orjson
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from resolver.values import MAX_VALUES
from tests.conftest import bearer
from tests.gateways.conftest import Device, register_body


def values_by_type(record: dict[str, Any]) -> dict[str, Any]:
    return {v["type"]: v for v in record["values"]}


async def test_register_then_resolve(
    device: Device, enterprise: dict[str, Any], http: httpx.AsyncClient
) -> None:
    body = register_body(
        enterprise, "mac", attributes={"model": "RX-200", "vendor": "Acme", "location": "Line 3"}
    )
    outcome, reply = await device.request(device.topic("a4:c1:38:0b:2f:1e"), body)

    assert outcome == "accepted", reply
    assert reply == {
        "requestId": body["requestId"],
        "handle": f"{enterprise['prefix']}/DEV-mac-A4C1380B2F1E",
        "created": True,
    }
    resolved = await http.get(f"/api/handles/{reply['handle']}")
    assert resolved.status_code == 200
    values = values_by_type(resolved.json())
    assert values["TEMPLATE"]["index"] == 1001
    assert values["TEMPLATE"]["data"]["value"] == "device@1"
    shown = {name: values[name]["data"]["value"] for name in values if name[0].islower()}
    assert shown["hardwareId"] == "A4C1380B2F1E"
    assert shown["hardwareIdType"] == "mac"
    assert shown["model"] == "RX-200"
    assert shown["network"] == "mqtt"
    assert shown["online"] == "true"
    assert shown["firstSeen"] == shown["lastSeen"]
    assert values["hardwareId"]["index"] == 2000
    assert values["online"]["ttl"] == 60  # liveness expires quickly from caches
    assert values["model"]["ttl"] == 86400


async def test_replay_returns_same_handle_and_updates_attributes(
    device: Device, enterprise: dict[str, Any], http: httpx.AsyncClient
) -> None:
    topic = device.topic("A4-C1-38-0B-2F-1E")
    first = await device.request(topic, register_body(enterprise, "mac", attributes={"model": "A"}))
    # The same adapter written another way is the same device.
    again_topic = device.topic("a4c1380b2f1e")
    second = await device.request(
        again_topic, register_body(enterprise, "mac", attributes={"model": "B"})
    )

    assert first[0] == second[0] == "accepted"
    assert first[1]["created"] is True
    assert second[1]["created"] is False
    assert second[1]["handle"] == first[1]["handle"]
    record = (await http.get(f"/api/handles/{first[1]['handle']}")).json()
    models = [v for v in record["values"] if v["type"] == "model"]
    assert [m["data"]["value"] for m in models] == ["B"]  # updated, not duplicated
    assert values_by_type(record)["firstSeen"] is not None
    devices = await http.get(f"/api/handles/{first[1]['handle']}", params={"type": "hardwareId"})
    assert len(devices.json()["values"]) == 1


async def expect_rejected(
    device: Device, topic: str, body: dict[str, Any] | bytes, status: int, code: str
) -> dict[str, Any]:
    outcome, reply = await device.request(topic, body)
    assert outcome == "rejected", reply
    assert reply["statusCode"] == status, reply
    assert reply["errorCode"] == code, reply
    assert reply["errorMessage"]
    return reply


async def test_every_rejection_names_the_problem(
    device: Device, enterprise: dict[str, Any], http: httpx.AsyncClient, gateway_app: Any
) -> None:
    topic = device.topic("SN-0001")
    wrong = {**register_body(enterprise), "provisionSecret": "not-it"}
    reply = await expect_rejected(device, topic, wrong, 401, "Unauthorized")
    assert reply["requestId"] == wrong["requestId"]

    unknown = f"{device.root}/88.999.404/devices/SN-0001/register"
    await expect_rejected(device, unknown, register_body(enterprise), 404, "EnterpriseNotFound")

    await expect_rejected(device, topic, b"{not json", 400, "MalformedMessage")
    await expect_rejected(device, topic, b"[1, 2]", 400, "MalformedMessage")
    no_kind = register_body(enterprise)
    del no_kind["hardwareIdType"]
    await expect_rejected(device, topic, no_kind, 400, "MalformedMessage")

    bad_imei = await expect_rejected(
        device,
        device.topic("356938035643808"),
        register_body(enterprise, "imei"),
        400,
        "InvalidHardwareId",
    )
    assert "check digit" in bad_imei["errorMessage"]
    short_eui = await expect_rejected(
        device,
        device.topic("A84041000181C2"),
        register_body(enterprise, "deveui"),
        400,
        "InvalidHardwareId",
    )
    assert "16 hex digits" in short_eui["errorMessage"]

    strange = register_body(enterprise, attributes={"colour": "red", "model": "X"})
    named = await expect_rejected(device, topic, strange, 400, "InvalidRequest")
    assert "colour" in named["errorMessage"]

    oversize = orjson.dumps({**register_body(enterprise), "pad": "x" * 70_000})
    await expect_rejected(device, topic, oversize, 413, "PayloadTooLarge")

    # None of it created a device, and the loop is still serving.
    listing = await http.get(f"/api/handles/{enterprise['prefix']}/DEV-serial-SN-0001")
    assert listing.status_code == 404
    ok = await device.request(topic, register_body(enterprise))
    assert ok[0] == "accepted"
    counters = gateway_app.state.gateway.counters
    assert counters.malformed == 4
    assert counters.rejected == 5


async def test_revoked_key_stops_working_at_once(
    device: Device, enterprise: dict[str, Any], http: httpx.AsyncClient
) -> None:
    assert (await device.request(device.topic("SN-1"), register_body(enterprise)))[0] == "accepted"
    revoked = await http.delete(
        f"/api/v1/enterprises/{enterprise['prefix']}/provisioning-keys/{enterprise['key']}",
        headers=bearer(enterprise),
    )
    assert revoked.status_code == 204
    await expect_rejected(
        device, device.topic("SN-2"), register_body(enterprise), 401, "Unauthorized"
    )


async def test_mqtt5_response_topic_and_correlation_data(
    device: Device, enterprise: dict[str, Any]
) -> None:
    inbox = f"{device.root}/inbox/{secrets.token_hex(4)}"
    await device.client.subscribe(inbox, qos=1)
    properties = Properties(PacketTypes.PUBLISH)
    properties.ResponseTopic = inbox
    properties.CorrelationData = b"corr-42"
    body = register_body(enterprise)
    await device.client.publish(
        device.topic("SN-77"), orjson.dumps(body), qos=1, properties=properties
    )
    async for message in device.client.messages:
        assert message.topic.value == inbox
        assert message.properties is not None
        assert message.properties.CorrelationData == b"corr-42"
        reply = orjson.loads(message.payload)  # type: ignore[arg-type]
        assert reply["outcome"] == "accepted"
        assert reply["requestId"] == body["requestId"]
        assert reply["handle"].endswith("/DEV-serial-SN-77")
        break


async def test_gateway_registers_its_machines_in_one_message(
    device: Device, enterprise: dict[str, Any], http: httpx.AsyncClient
) -> None:
    machines = [
        {"hardwareId": f"PRESS-{n:04d}", "hardwareIdType": "serial", "attributes": {"model": "P"}}
        for n in range(300)
    ]
    machines.append({"hardwareId": "not a mac", "hardwareIdType": "mac"})
    topic = f"{device.root}/{device.prefix}/gateway/box-7/register"
    body = {**register_body(enterprise), "devices": machines}
    del body["hardwareIdType"]
    outcome, reply = await device.request(topic, body, wait=60)

    assert outcome == "accepted", reply
    results = reply["results"]
    assert len(results) == 301
    assert all(r["created"] for r in results[:300])
    assert results[300]["errorCode"] == "InvalidHardwareId"
    assert results[300]["hardwareId"] == "not a mac"
    record = (await http.get(f"/api/handles/{results[5]['handle']}")).json()
    assert values_by_type(record)["gatewayId"]["data"]["value"] == "box-7"

    replay = await device.request(topic, body, wait=60)
    assert [r.get("created") for r in replay[1]["results"][:300]] == [False] * 300


async def test_batch_over_the_limit_is_rejected(device: Device, enterprise: dict[str, Any]) -> None:
    machines = [{"hardwareId": f"M{n}", "hardwareIdType": "serial"} for n in range(1001)]
    topic = f"{device.root}/{device.prefix}/gateway/box-8/register"
    reply = await expect_rejected(
        device, topic, {**register_body(enterprise), "devices": machines}, 400, "InvalidRequest"
    )
    assert "at most 1000" in reply["errorMessage"]


async def test_plain_mqtt311_device(topic_root: str, enterprise: dict[str, Any]) -> None:
    async with aiomqtt.Client("127.0.0.1", 1883, protocol=aiomqtt.ProtocolVersion.V311) as client:
        old = Device(client, topic_root, enterprise["prefix"])
        outcome, reply = await old.request(
            old.topic("356938035643809"), register_body(enterprise, "imei")
        )
    assert outcome == "accepted"
    assert reply["handle"].endswith("/DEV-imei-356938035643809")


async def test_a_write_refused_after_its_checks_does_not_sink_the_batch(
    device: Device, enterprise: dict[str, Any], http: httpx.AsyncClient
) -> None:
    first = await device.request(device.topic("FULL-1"), register_body(enterprise))
    # The enterprise fills the record to the limit, so the next registration's new values
    # (gatewayId, liveness) no longer fit: refused at write time, not by a check.
    filler = [
        {"index": i, "type": "NOTE", "data": {"format": "string", "value": str(i)}}
        for i in range(1, MAX_VALUES)  # + the HS_ADMIN value the node adds
    ]
    full = await http.put(
        f"/api/handles/{first[1]['handle']}", json={"values": filler}, headers=bearer(enterprise)
    )
    assert full.status_code == 200, full.text
    machines = [
        {"hardwareId": "FULL-1", "hardwareIdType": "serial"},
        {"hardwareId": "FRESH-1", "hardwareIdType": "serial"},
    ]
    topic = f"{device.root}/{device.prefix}/gateway/box-9/register"
    body = {**register_body(enterprise), "devices": machines}
    outcome, reply = await device.request(topic, body)
    assert outcome == "accepted", reply
    refused, fresh = reply["results"]
    assert refused["errorCode"] == "InvalidValue"
    assert "at most" in refused["errorMessage"]
    assert fresh["created"] is True
    assert (await http.get(f"/api/handles/{fresh['handle']}")).status_code == 200
