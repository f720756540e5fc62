"""Running the gateway: the embedded broker of `idnode serve`, a taken port, --no-broker."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest

from tests.conftest import OPERATOR, OPERATOR_TOKEN, LiveNode, create_provisioning_key, free_port
from tests.gateways.conftest import Device, register_body, require_mosquitto

pytestmark = pytest.mark.slow

GATEWAY_OFF = "device gateway off"


def serve(tmp_path: Path, broker_port: int, *extra: str) -> LiveNode:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDNODE_")}
    env.update(
        IDNODE_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'node.db'}",
        IDNODE_ADMIN_TOKEN=OPERATOR_TOKEN,
        IDNODE_EMBEDDED_BROKER_PORT=str(broker_port),
    )
    node = LiveNode(env, tmp_path)
    node.start(*extra)
    return node


async def enterprise_with_key(base: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base) as http:
        plant = await http.post("/api/v1/enterprises", json={"name": "P"}, headers=OPERATOR)
        assert plant.status_code == 201
        body = plant.json()
        key = await create_provisioning_key(http, body, "k")
        return {**body, "key": key["key"], "provisionSecret": key["secret"]}


async def test_serve_runs_an_embedded_broker_devices_can_register_on(tmp_path: Path) -> None:
    port = free_port()
    node = serve(tmp_path, port)
    try:
        plant = await enterprise_with_key(node.url)
        async with aiomqtt.Client("127.0.0.1", port) as client:  # amqtt: MQTT 3.1.1
            device = Device(client, "idnode/v1", plant["prefix"])
            outcome, reply = await device.request(
                device.topic("a84041000181c2f7"), register_body(plant, "deveui")
            )
        assert outcome == "accepted", reply
        assert reply["handle"] == f"{plant['prefix']}/DEV-deveui-A84041000181C2F7"
        async with httpx.AsyncClient(base_url=node.url) as http:
            resolved = await http.get(f"/api/handles/{reply['handle']}")
        assert resolved.status_code == 200
        assert f"embedded MQTT broker on mqtt://127.0.0.1:{port}" in node.log.read_text()
    finally:
        node.stop()


def test_taken_port_is_said_in_one_line_and_http_keeps_serving(tmp_path: Path) -> None:
    require_mosquitto()  # it holds 1883, as on machines that run Mosquitto
    node = serve(tmp_path, 1883)
    try:
        answer = httpx.get(f"{node.url}/api/handles/88.999.1/NOPE")
        assert answer.status_code == 404
        lines = [line for line in node.log.read_text().splitlines() if GATEWAY_OFF in line]
        assert len(lines) == 1
        assert "127.0.0.1:1883 is taken" in lines[0]
        assert "Traceback" not in node.log.read_text()
    finally:
        node.stop()


def test_no_broker_leaves_the_port_alone(tmp_path: Path) -> None:
    port = free_port()
    node = serve(tmp_path, port, "--no-broker")
    try:
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0
        log = node.log.read_text()
        assert "embedded MQTT broker" not in log
        assert GATEWAY_OFF not in log
    finally:
        node.stop()


async def test_serve_keeps_registering_after_hostile_messages(tmp_path: Path) -> None:
    port = free_port()
    node = serve(tmp_path, port)
    try:
        plant = await enterprise_with_key(node.url)
        async with aiomqtt.Client("127.0.0.1", port) as client:
            device = Device(client, "idnode/v1", plant["prefix"])
            hostile = [
                (device.topic("SN-1"), {**register_body(plant), "provisionKey": ["x"]}),
                (device.topic("SN-2"), {**register_body(plant), "provisionSecret": {"a": 1}}),
                (device.topic("SN-3"), register_body(plant, attributes={"model": "a\x00b"})),
                (device.topic("SN\x01X"), register_body(plant)),  # amqtt lets this through
            ]
            for topic, body in hostile:
                outcome, reply = await device.request(topic, body)
                assert (outcome, reply["errorCode"]) == ("rejected", "MalformedMessage"), reply
            outcome, reply = await device.request(device.topic("SN-OK"), register_body(plant))
        assert outcome == "accepted", reply
        assert "Traceback" not in node.log.read_text()
    finally:
        node.stop()
