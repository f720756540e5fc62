"""Whatever a device sends over MQTT, the gateway answers it (or drops it) and keeps serving.

Wrong types in every field, control characters, huge and empty payloads and wrong topic
shapes, on the real Mosquitto; afterwards a valid registration is still accepted at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from typing import Any

import httpx
import orjson
import pytest

from app.settings import Settings
from app.supervisor import Supervisor
from gateways.devices import DeviceService
from gateways.mqtt import BrokerAddress, MqttGateway
from tests.gateways.conftest import Device, listening_to_chirpstack, register_body

WRONG_TYPES: list[Any] = [["x"], {"x": 1}, 7, 1.5, None, True]
BAD_TEXT = ["a\x00b", "a\x01b", "\x7f", "\ud800"]
GUESSES = 3  # wrong secrets for one provisioning key before it is throttled


@pytest.fixture
def gateway_settings(gateway_settings: Settings, chirpstack_root: str) -> Settings:
    return listening_to_chirpstack(
        gateway_settings, chirpstack_root, auth_failures_per_credential=GUESSES
    )


def _json(body: Any) -> bytes:
    # orjson refuses lone surrogates; the standard library writes them as \ud800 escapes.
    return json.dumps(body).encode()


def hostile_registrations(enterprise: dict[str, Any]) -> list[dict[str, Any] | bytes]:
    """Register messages a hostile client can send, each one that must be rejected."""
    cases: list[dict[str, Any] | bytes] = []
    for field in ("provisionKey", "provisionSecret", "hardwareIdType", "attributes"):
        for value in WRONG_TYPES + BAD_TEXT:
            if field == "attributes" and value is None:
                continue  # no attributes is allowed
            cases.append({**register_body(enterprise), field: value})
    not_text = [v for v in WRONG_TYPES if not isinstance(v, int | float) or v is True]
    for value in not_text + BAD_TEXT:
        cases.append(register_body(enterprise, attributes={"model": value}))
        cases.append(register_body(enterprise, attributes={"batteryLevel": value}))
    for value in WRONG_TYPES + BAD_TEXT:
        cases.append({**register_body(enterprise), "requestId": value, "extra": "\x00"})
    cases.append(register_body(enterprise, attributes={"model\x00": "x"}))
    cases.append(register_body(enterprise, attributes={"batteryLevel": 1e308}))
    cases.append({**register_body(enterprise), "note": {"deep": [{"er": "\x00"}]}})
    cases += [b"", b"null", b"[]", b'"text"', b"1", b"\xff\xfe", b"{", b'{"a":"\\u0000"}']
    cases.append(b'{"provisionKey": 1' + b"0" * 400 + b"}")
    cases.append(orjson.dumps({**register_body(enterprise), "pad": "x" * 70_000}))
    return cases


def hostile_batches(enterprise: dict[str, Any]) -> list[dict[str, Any] | bytes]:
    """Gateway-box batches that must be rejected as a whole."""
    one = {"hardwareId": "PRESS-1", "hardwareIdType": "serial"}
    base = {k: v for k, v in register_body(enterprise).items() if k != "hardwareIdType"}
    cases: list[dict[str, Any] | bytes] = [
        {**base, "devices": value} for value in [*WRONG_TYPES, "x", [], [1], [[]]]
    ]
    for field in ("hardwareId", "hardwareIdType"):
        cases += [{**base, "devices": [{**one, field: value}]} for value in WRONG_TYPES[:3]]
    cases += [{**base, "devices": [{**one, "attributes": {"model": t}}]} for t in BAD_TEXT]
    cases.append({**base, "devices": [one] * 1001})
    for field in ("provisionKey", "provisionSecret"):
        cases += [{**base, field: value, "devices": [one]} for value in WRONG_TYPES]
    cases += [b"", b"[]", b"\xff"]
    return cases


@pytest.mark.slow  # waits for the gateway after each hostile message
async def test_no_message_stops_the_gateway(
    device: Device,
    enterprise: dict[str, Any],
    http: httpx.AsyncClient,
    gateway_app: Any,
    chirpstack_root: str,
) -> None:
    root, prefix = device.root, device.prefix
    await device.client.subscribe(f"{root}/#", qos=1)
    expected: set[str] = set()

    async def send(topic: str, body: dict[str, Any] | bytes, *, answered: bool = True) -> None:
        payload = body if isinstance(body, bytes) else _json(body)
        await device.client.publish(topic, payload, qos=1)
        if answered:
            expected.add(topic)

    for n, body in enumerate(hostile_registrations(enterprise)):
        await send(device.topic(f"FUZZ-{n}"), body)
    for n, body in enumerate(hostile_batches(enterprise)):
        await send(f"{root}/{prefix}/gateway/box-{n}/register", body)
    for n, body in enumerate(
        [b"[]", b"\xff", b"1", {"ts": [1]}, {"ts": 1e300}, {"ts": "x\x00"}, {"status": [1]}]
        + [{"status": {"batteryLevel": v}} for v in WRONG_TYPES if v is not None]
        + [{"status": {"note\x00": 1}}, {"status": {"note": "\x00"}}]
    ):
        await send(device.topic(f"BEAT-{n}", "heartbeat"), body)
    # Topic shapes that are no request: ignored, never answered, never a crash.
    for topic in [
        f"{root}/{prefix}/devices/register",
        f"{root}/{prefix}/devices/X/register/more",
        f"{root}/{prefix}/gadgets/X/register",
        f"{root}/{prefix}/devices/X/delete",
        f"{root}/{prefix}//X/register",
        f"{root}/{prefix}/devices//register",
    ]:
        await send(topic, register_body(enterprise), answered=False)
    # ...and topics that are requests but name nothing valid: rejected.
    for topic in [
        f"{root}/not-a-prefix/devices/X/register",
        f"{root}/{prefix}.1.2.3.4.5/devices/X/register",
        f"{root}/../devices/X/register",
    ]:
        await send(topic, register_body(enterprise))
    events = f"{chirpstack_root}/application/app-1/device/a84041000181c2f7/event"
    for body in [b"", b"[]", b"\xff", {"deviceInfo": []}, {"deviceInfo": {"devEui": ["x"]}}]:
        await send(f"{events}/up", body, answered=False)
    join = {"deviceInfo": {"devEui": "A84041000181C2F7", "deviceProfileName": "\x00"}}
    await send(f"{events}/join", join, answered=False)

    replies: dict[str, str] = {}
    async with asyncio.timeout(30):
        async for message in device.client.messages:
            request, _, outcome = message.topic.value.rpartition("/")
            if request in expected and outcome in ("accepted", "rejected"):
                replies[request] = outcome
                reply = orjson.loads(message.payload)  # type: ignore[arg-type]
                assert reply["statusCode"] < 500 or reply["errorCode"] == "InternalError"
            if len(replies) == len(expected):
                break
    assert set(replies.values()) == {"rejected"}, {
        t: o for t, o in replies.items() if o != "rejected"
    }

    started = time.monotonic()
    outcome, reply = await device.request(device.topic("SN-AFTER"), register_body(enterprise), 1)
    assert outcome == "accepted", reply
    assert time.monotonic() - started < 1
    # Nothing of it was stored.
    assert gateway_app.state.gateway.counters.registered == 1
    assert (await http.get(f"/api/handles/{prefix}/DEV-serial-FUZZ-0")).status_code == 404


async def test_a_handler_fault_is_logged_counted_and_the_gateway_goes_on(
    device: Device,
    enterprise: dict[str, Any],
    gateway_app: Any,
    gateway_settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A gateway of its own (on its own topic root) serving another protocol whose handler
    # has a bug.
    root = f"{device.root}-own"
    settings = gateway_settings.model_copy(
        update={"mqtt_topic_root": root, "mqtt_client_id": f"idnode-test-{secrets.token_hex(4)}"}
    )
    gateway = MqttGateway(
        DeviceService(gateway_app.state.node.database, settings),
        settings,
        BrokerAddress.parse("mqtt://127.0.0.1:1883"),
    )

    async def broken(message: Any) -> None:
        raise KeyError("a bug in a handler")

    gateway.attach(f"{root}/broken/+", broken)
    supervisor = Supervisor(max_backoff=0.01)
    running = [supervisor.start(name, loop) for name, loop in gateway.loops().items()]
    try:
        await asyncio.wait_for(gateway.connected.wait(), 10)
        with caplog.at_level(logging.ERROR, logger="gateways.mqtt"):
            await device.client.publish(f"{root}/broken/1", b"{}", qos=1)
            own = Device(device.client, root, device.prefix)
            outcome, reply = await own.request(own.topic("SN-X"), register_body(enterprise))
        assert outcome == "accepted", reply
        assert gateway.counters.handler_failures == 1
        [failure] = [r for r in caplog.records if r.getMessage() == "gateways.mqtt.handler_failed"]
        assert failure.exc_info is not None
        assert all(s.restarts == 0 for s in running)  # handled per message: no task crashed
    finally:
        for supervised in reversed(running):
            await supervised.stop()


async def test_a_provisioning_key_guessed_at_is_throttled(
    device: Device, enterprise: dict[str, Any]
) -> None:
    for n in range(GUESSES):
        wrong = {**register_body(enterprise), "provisionSecret": f"guess-{n}"}
        outcome, reply = await device.request(device.topic(f"SN-{n}"), wrong)
        assert (outcome, reply["errorCode"]) == ("rejected", "Unauthorized")
    for _ in range(2):  # a single batch or a gateway box: refused alike, even the right secret
        outcome, reply = await device.request(device.topic("SN-OK"), register_body(enterprise))
        assert outcome == "rejected"
        assert (reply["statusCode"], reply["errorCode"]) == (429, "TooManyAttempts")
    box = {
        **register_body(enterprise),
        "devices": [{"hardwareId": "M-1", "hardwareIdType": "serial"}],
    }
    outcome, reply = await device.request(f"{device.root}/{device.prefix}/gateway/g/register", box)
    assert (outcome, reply["errorCode"]) == ("rejected", "TooManyAttempts")
