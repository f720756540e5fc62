"""deploy/mosquitto: no anonymous clients, and each device reaches only its own topics."""

from __future__ import annotations

import asyncio
import getpass
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest

from tests.conftest import free_port
from tests.gateways.conftest import require_mosquitto

pytestmark = pytest.mark.slow
DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto"
PASSWORDS = {"idnode-gateway": "gw-pass", "88.999.1": "plant-pass", "88.999.2": "rival-pass"}


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[int]:
    require_mosquitto()
    port = free_port()
    passwd = tmp_path / "passwd"
    for user, password in PASSWORDS.items():
        create = [] if passwd.exists() else ["-c"]
        subprocess.run(["mosquitto_passwd", *create, "-b", str(passwd), user, password], check=True)
    config = (DEPLOY / "mosquitto.conf").read_text()
    config = config.replace("/etc/mosquitto/idnode/passwd", str(passwd))
    config = config.replace("/etc/mosquitto/idnode/acl", str(DEPLOY / "acl"))
    config = config.replace("/var/lib/mosquitto/", f"{tmp_path}/")
    config = config.replace("listener 1883", f"listener {port} 127.0.0.1")
    config += f"user {getpass.getuser()}\n"
    (tmp_path / "mosquitto.conf").write_text(config)
    process = subprocess.Popen(["mosquitto", "-c", str(tmp_path / "mosquitto.conf")])
    deadline = time.monotonic() + 10
    probe = ["mosquitto_pub", "-p", str(port), "-u", "88.999.1", "-P", "plant-pass"]
    while subprocess.run([*probe, "-t", "x", "-m", ""], capture_output=True).returncode != 0:
        assert time.monotonic() < deadline, "mosquitto did not start"
        time.sleep(0.1)
    yield port
    process.terminate()
    process.wait(timeout=10)


def client(port: int, user: str | None, identifier: str) -> aiomqtt.Client:
    return aiomqtt.Client(
        "127.0.0.1",
        port,
        username=user,
        password=PASSWORDS.get(user or ""),
        identifier=identifier,
        protocol=aiomqtt.ProtocolVersion.V5,
    )


async def test_anonymous_clients_are_refused(broker: int) -> None:
    with pytest.raises(aiomqtt.MqttError):
        async with client(broker, None, "nobody"):
            pass


async def drain(messages: aiomqtt.client.MessagesIterator, settle: float = 0.5) -> list[str]:
    """The topics of every message that arrives within ``settle`` seconds of the last."""
    topics = []
    while True:
        try:
            async with asyncio.timeout(settle):
                topics.append((await anext(messages)).topic.value)
        except TimeoutError:
            return topics


async def test_devices_reach_only_their_own_topics(broker: int) -> None:
    root = "idnode/v1"
    async with client(broker, "idnode-gateway", "gw-1") as gateway:
        await gateway.subscribe(f"{root}/+/devices/+/register", qos=1)
        async with client(broker, "88.999.1", "SN-1") as device:
            for target in (
                "88.999.1/devices/SN-2",
                "88.999.2/devices/SN-1",
                "88.999.1/devices/SN-1",
            ):
                await device.publish(f"{root}/{target}/register", b"{}", qos=1)
            assert await drain(gateway.messages) == [f"{root}/88.999.1/devices/SN-1/register"]

            # Replies: a device reads its own, never another device's.
            await device.subscribe(f"{root}/88.999.1/devices/+/register/+", qos=1)
            for target in ("SN-2", "SN-1"):
                await gateway.publish(
                    f"{root}/88.999.1/devices/{target}/register/accepted", b"{}", qos=1
                )
            assert await drain(device.messages) == [
                f"{root}/88.999.1/devices/SN-1/register/accepted"
            ]
