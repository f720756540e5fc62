"""Gateway fixtures: the node with its MQTT gateway on the real Mosquitto (127.0.0.1:1883).

Every test gets its own topic root, so parallel runs on one broker never cross.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest

from app.settings import Settings
from tests.conftest import (
    _port_open,
    asgi_client,
    bearer,
    create_enterprise,
    create_provisioning_key,
    running_app,
)
from tests.gateways.handle_node import NativeNode, native_node

MOSQUITTO_HINT = "Mosquitto is not reachable on 127.0.0.1:1883; start it with `mosquitto -d`"
FIXTURES = Path(__file__).parent.parent / "fixtures"


def require_mosquitto() -> None:
    if _port_open("127.0.0.1", 1883):
        return
    if os.environ.get("CI"):
        pytest.fail(MOSQUITTO_HINT + " (CI requires it)")
    pytest.skip(MOSQUITTO_HINT)


def fixture_json(name: str) -> dict[str, Any]:
    return dict(json.loads((FIXTURES / name).read_text()))


@pytest.fixture
def topic_root() -> str:
    return f"idnode-test-{secrets.token_hex(4)}/v1"


@pytest.fixture
def gateway_settings(settings: Settings, topic_root: str) -> Settings:
    require_mosquitto()
    return settings.model_copy(
        update={
            "mqtt_url": "mqtt://127.0.0.1:1883",
            "mqtt_topic_root": topic_root,
            "mqtt_client_id": f"idnode-test-{secrets.token_hex(4)}",
            "heartbeat_flush_interval": 0.05,
        }
    )


@pytest.fixture
def chirpstack_root() -> str:
    """A topic root of the test's own for ChirpStack's events."""
    return f"cs-{secrets.token_hex(4)}"


def listening_to_chirpstack(settings: Settings, root: str, **changes: Any) -> Settings:
    """``settings`` with the gateway subscribed to every ChirpStack event under ``root``."""
    topic = f"{root}/application/+/device/+/event/+"
    return settings.model_copy(update={"chirpstack_topic": topic, **changes})


@pytest.fixture
async def node(settings: Settings) -> AsyncIterator[NativeNode]:
    """A node with its native Handle listener on a port of its own (``handle_node.py``)."""
    async with native_node(settings) as running:
        yield running


@pytest.fixture
async def gateway_app(gateway_settings: Settings) -> AsyncIterator[Any]:
    """The node with its gateway connected."""
    async with running_app(gateway_settings) as application:
        await asyncio.wait_for(application.state.gateway.connected.wait(), 10)
        yield application


@pytest.fixture
async def http(gateway_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(gateway_app) as client:
        yield client


class Device:
    """A device (or gateway box) speaking the protocol on its own MQTT connection."""

    def __init__(self, client: aiomqtt.Client, root: str, prefix: str) -> None:
        self.client = client
        self.root = root
        self.prefix = prefix

    def topic(self, hardware_id: str, action: str = "register") -> str:
        return f"{self.root}/{self.prefix}/devices/{hardware_id}/{action}"

    async def request(
        self, topic: str, body: dict[str, Any] | bytes, wait: float = 10
    ) -> tuple[str, dict[str, Any]]:
        """Publish a request and wait for its reply: ("accepted" | "rejected", body)."""
        await self.client.subscribe(f"{topic}/+", qos=1)
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        await self.client.publish(topic, payload, qos=1)
        return await self.reply(topic, wait)

    async def reply(self, topic: str, wait: float = 10) -> tuple[str, dict[str, Any]]:
        async with asyncio.timeout(wait):
            async for message in self.client.messages:
                if message.topic.value.startswith(topic + "/"):
                    outcome = message.topic.value.rsplit("/", 1)[1]
                    return outcome, json.loads(bytes(message.payload))  # type: ignore[arg-type]
        raise AssertionError("no reply")


async def configure_nbiot(
    client: httpx.AsyncClient, plant: dict[str, Any], platform: str, token: str | None
) -> None:
    """``plant``'s account on NB-IoT ``platform`` pushes with ``token``, its devices register
    with ``plant["key"]``."""
    answer = await client.put(
        f"/api/v1/enterprises/{plant['prefix']}/nbiot/{platform}",
        json={"provisionKey": plant["key"], "token": token},
        headers=bearer(plant),
    )
    assert answer.status_code == 200, answer.text


@pytest.fixture
async def enterprise(http: httpx.AsyncClient) -> dict[str, Any]:
    """An enterprise with a provisioning key (``key`` / ``secret`` added)."""
    plant = await create_enterprise(http, "Retrofit Plant")
    created = await create_provisioning_key(http, plant)
    return {**plant, "key": created["key"], "provisionSecret": created["secret"]}


@pytest.fixture
async def device(topic_root: str, enterprise: dict[str, Any]) -> AsyncIterator[Device]:
    async with aiomqtt.Client("127.0.0.1", 1883, protocol=aiomqtt.ProtocolVersion.V5) as client:
        yield Device(client, topic_root, enterprise["prefix"])


def register_body(enterprise: dict[str, Any], kind: str = "serial", **extra: Any) -> dict[str, Any]:
    return {
        "requestId": secrets.token_hex(4),
        "provisionKey": enterprise["key"],
        "provisionSecret": enterprise["provisionSecret"],
        "hardwareIdType": kind,
        **extra,
    }
