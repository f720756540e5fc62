"""The broker restarted while devices register: the node says which broker it lost, takes
registrations again by itself once it is back, and every registration it accepted is there
exactly once (devices that heard nothing simply ask again)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest

from tests.conftest import OPERATOR, LiveNode, create_provisioning_key, running_node
from tests.servers import PrivateMosquitto, private_mosquitto

pytestmark = pytest.mark.slow
DEVICES = 60
RESTART_AFTER = 20  # accepted registrations
ROOT = "idnode/v1"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PrivateMosquitto]:
    with private_mosquitto(tmp_path) as server:
        yield server


@pytest.fixture
def node(broker: PrivateMosquitto, tmp_path: Path) -> Iterator[LiveNode]:
    database = f"sqlite+aiosqlite:///{tmp_path / 'node.db'}"
    with running_node(
        tmp_path, database, "--no-broker", mqtt_url=broker.url, mqtt_max_backoff="0.5"
    ) as live:
        yield live


async def wait_until_ready(http: httpx.AsyncClient, ready: bool) -> list[str]:
    async with asyncio.timeout(30):
        while True:
            answer = await http.get("/readyz")
            if (answer.status_code == 200) == ready:
                return list(answer.json().get("reasons", []))
            await asyncio.sleep(0.1)


class Devices:
    """Devices registering one after another over their own connection, asking again (same
    hardware id) when no answer comes, as the device protocol tells them to."""

    def __init__(self, port: int, plant: dict[str, Any]) -> None:
        self.port = port
        self.plant = plant
        self.accepted: dict[str, str] = {}  # hardware id -> handle
        self.enough = asyncio.Event()

    def topic(self, hardware_id: str) -> str:
        return f"{ROOT}/{self.plant['prefix']}/devices/{hardware_id}/register"

    async def register_all(self, hardware_ids: list[str]) -> None:
        pending = list(hardware_ids)
        while pending:
            try:
                async with aiomqtt.Client(
                    "127.0.0.1", self.port, protocol=aiomqtt.ProtocolVersion.V5
                ) as client:
                    await client.subscribe(f"{ROOT}/{self.plant['prefix']}/devices/+/register/+")
                    while pending:
                        if await self._register(client, pending[0]):
                            pending.pop(0)
            except aiomqtt.MqttError:
                await asyncio.sleep(0.2)  # the broker is away: connect again

    async def _register(self, client: aiomqtt.Client, hardware_id: str) -> bool:
        body = {
            "provisionKey": self.plant["key"],
            "provisionSecret": self.plant["secret"],
            "hardwareIdType": "serial",
        }
        await client.publish(self.topic(hardware_id), json.dumps(body).encode(), qos=1)
        try:
            async with asyncio.timeout(3):
                async for message in client.messages:
                    if message.topic.value.startswith(self.topic(hardware_id) + "/"):
                        reply = json.loads(bytes(message.payload))  # type: ignore[arg-type]
                        assert message.topic.value.endswith("/accepted"), reply
                        self.accepted[hardware_id] = reply["handle"]
                        if len(self.accepted) >= RESTART_AFTER:
                            self.enough.set()
                        return True
        except TimeoutError:
            return False  # lost with the broker: ask again
        raise aiomqtt.MqttError("disconnected")


async def test_every_registration_accepted_across_a_broker_restart_is_there_once(
    node: LiveNode, broker: PrivateMosquitto, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(base_url=node.url, timeout=30) as http:
        plant = (
            await http.post("/api/v1/enterprises", json={"name": "Plant"}, headers=OPERATOR)
        ).json()
        key = await create_provisioning_key(http, plant, "line-1")
        plant |= {"key": key["key"], "secret": key["secret"]}
        await wait_until_ready(http, ready=True)
        devices = Devices(broker.port, plant)
        hardware_ids = [f"SN-{n:04d}" for n in range(DEVICES)]

        async def restart() -> list[str]:
            await devices.enough.wait()
            await asyncio.to_thread(broker.stop)
            reasons = await wait_until_ready(http, ready=False)
            await asyncio.sleep(1)
            await asyncio.to_thread(broker.start)
            await wait_until_ready(http, ready=True)
            return reasons

        async with asyncio.timeout(120):
            reasons, _ = await asyncio.gather(restart(), devices.register_all(hardware_ids))

    assert reasons == [f"broker: the device gateway is not connected to {broker.url}"]
    assert sorted(devices.accepted) == hardware_ids
    with sqlite3.connect(tmp_path / "node.db") as db:
        rows = db.execute(
            "SELECT hardware_id, handle FROM devices WHERE prefix = ?", (plant["prefix"],)
        ).fetchall()
    assert Counter(hardware_id for hardware_id, _ in rows) == Counter(hardware_ids)
    assert dict(rows) == devices.accepted
    log = node.log.read_text()
    assert "gateways.mqtt.reconnecting" in log
    assert log.count("gateways.mqtt.connected") >= 2
