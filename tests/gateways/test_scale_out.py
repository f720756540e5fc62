"""Scale-out and failure: two `idnode gateway` processes on one shared subscription, and a
broker restart in the middle of a run."""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from app.cli import migrate_database
from app.main import create_app
from app.settings import Settings
from app.storage.database import Database
from app.storage.models import Device as DeviceRow
from tests.conftest import (
    OPERATOR_TOKEN,
    _create_pg_database,
    _drop_pg_database,
    _empty_tables,
    create_enterprise,
    create_provisioning_key,
    free_port,
    node_client,
    require_postgres,
)
from tests.gateways.conftest import Device, register_body, require_mosquitto

pytestmark = pytest.mark.slow


async def provisioned(settings: Settings) -> dict[str, Any]:
    """An enterprise and provisioning key, made through the node's API."""
    async with node_client(settings, base_url="http://n") as http:
        plant = await create_enterprise(http)
        key = await create_provisioning_key(http, plant, "k")
        return {**plant, "key": key["key"], "provisionSecret": key["secret"]}


async def count_devices(settings: Settings) -> int:
    database = Database(settings)
    try:
        async with database.read_session() as session:
            return int((await session.execute(select(func.count(DeviceRow.id)))).scalar_one())
    finally:
        await database.dispose()


async def collect_replies(client: aiomqtt.Client, expected: int) -> list[dict[str, Any]]:
    replies = []
    async with asyncio.timeout(120):
        async for message in client.messages:
            assert message.topic.value.endswith("/accepted"), message.payload
            replies.append(json.loads(bytes(message.payload)))  # type: ignore[arg-type]
            if len(replies) == expected:
                return replies
    raise AssertionError("replies missing")


def start_gateway(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    idnode = Path(sys.executable).with_name("idnode")
    with log.open("w") as out:
        return subprocess.Popen(
            [str(idnode), "gateway"], env=env, stdout=out, stderr=subprocess.STDOUT
        )


def wait_for(log: Path, text: str, process: subprocess.Popen[bytes], wait: float = 30) -> None:
    deadline = time.monotonic() + wait
    while text not in log.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not in log:\n{log.read_text()}")
        time.sleep(0.1)


async def test_two_gateways_split_a_shared_subscription_without_duplicates(
    tmp_path: Path,
) -> None:
    require_postgres()  # scale-out gateways share the one PostgreSQL
    require_mosquitto()
    name = f"idnode_share_{os.getpid()}_{secrets.token_hex(3)}"
    url = await _create_pg_database(name)
    settings = Settings(database_url=url, admin_token=OPERATOR_TOKEN)
    await asyncio.to_thread(migrate_database, settings)
    plant = await provisioned(settings)
    root = f"idnode-share-{secrets.token_hex(4)}/v1"
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDNODE_")}
    env.update(
        IDNODE_DATABASE_URL=url,
        IDNODE_MQTT_URL="mqtt://127.0.0.1:1883",
        IDNODE_MQTT_TOPIC_ROOT=root,
        IDNODE_MQTT_SHARED_GROUP=f"g{secrets.token_hex(3)}",
    )
    logs = [tmp_path / "gw-a.log", tmp_path / "gw-b.log"]
    ports = [free_port(), free_port()]
    gateways = [
        start_gateway(
            {
                **env,
                "IDNODE_MQTT_CLIENT_ID": f"gw-{i}-{secrets.token_hex(3)}",
                "IDNODE_GATEWAY_METRICS_PORT": str(port),
                "IDNODE_METRICS_INTERVAL": "0.2",
            },
            log,
        )
        for i, (log, port) in enumerate(zip(logs, ports, strict=True))
    ]
    try:
        for process, log in zip(gateways, logs, strict=True):
            wait_for(log, "gateways.mqtt.connected", process)
        async with aiomqtt.Client("127.0.0.1", 1883, protocol=aiomqtt.ProtocolVersion.V5) as client:
            device = Device(client, root, plant["prefix"])
            await client.subscribe(f"{root}/{plant['prefix']}/devices/+/register/+", qos=1)
            # Every device registers twice at once: the two copies may reach different
            # gateway processes and race.
            for n in range(200):
                body = json.dumps(register_body(plant, requestId=f"{n}")).encode()
                for _ in range(2):
                    await client.publish(device.topic(f"SHARE-{n:04d}"), body, qos=1)
            replies = await collect_replies(client, 400)
        # Each gateway serves its own /metrics; together they count every message once.
        scraped = await scrape_until(ports, lambda totals: sum(totals.values()) >= 400)
        assert scraped["registration", "created"] == 200, dict(scraped)
        assert scraped["registration", "replayed"] == 200, dict(scraped)
        for port in ports:  # each gateway's own endpoint shows its share of the work
            own = gateway_counts(port)
            assert (
                own.get(("registration", "created"), 0) + own.get(("registration", "replayed"), 0)
                > 0
            )
    finally:
        for process in gateways:
            process.send_signal(signal.SIGTERM)
        for process in gateways:
            process.wait(timeout=30)
    try:
        handles: dict[str, set[str]] = {}
        created: dict[str, int] = {}
        for reply in replies:
            handles.setdefault(reply["requestId"], set()).add(reply["handle"])
            created[reply["requestId"]] = created.get(reply["requestId"], 0) + reply["created"]
        assert len(handles) == 200
        assert all(len(h) == 1 for h in handles.values())
        assert set(created.values()) == {1}  # one creation per device, one replay
        assert await count_devices(settings) == 200
        stopped = [
            json.loads(log.read_text().split("gateway stopped ", 1)[1].splitlines()[0])
            for log in logs
        ]
        assert sum(s["registered"] for s in stopped) == 200
        assert all(s["registered"] + s["replayed"] > 0 for s in stopped)  # load was split
    finally:
        await _drop_pg_database(name)


def gateway_counts(port: int) -> dict[tuple[str, str], float]:
    """idnode_mqtt_messages_total by (kind, result) from a gateway's own /metrics."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    counts: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "idnode_mqtt_messages_total":
                key = (sample.labels["kind"], sample.labels["result"])
                counts[key] = counts.get(key, 0) + sample.value
    return counts


async def scrape_until(
    ports: list[int], done: Callable[[dict[tuple[str, str], float]], bool]
) -> dict[tuple[str, str], float]:
    """The gateways' counts added up, once ``done`` holds (they flush every 0.2 s here)."""
    deadline = time.monotonic() + 10
    while True:
        totals: dict[tuple[str, str], float] = defaultdict(float)
        for port in ports:
            for key, value in gateway_counts(port).items():
                totals[key] += value
        if done(totals) or time.monotonic() > deadline:
            return totals
        await asyncio.sleep(0.2)


def mosquitto(port: int, workdir: Path) -> subprocess.Popen[bytes]:
    config = workdir / "mosquitto.conf"
    # Started as root, Mosquitto drops to its own user, which could not write its
    # persistence file here: stay the current user.
    config.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\nuser {getpass.getuser()}\n"
        f"persistence true\npersistence_location {workdir}/\n"
    )
    process = subprocess.Popen(["mosquitto", "-c", str(config)], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process
        except OSError:
            time.sleep(0.05)
    raise AssertionError("mosquitto did not start")


async def register_batch(
    port: int, root: str, plant: dict[str, Any], names: list[str], gateway: Any
) -> list[dict[str, Any]]:
    async with aiomqtt.Client("127.0.0.1", port, protocol=aiomqtt.ProtocolVersion.V5) as client:
        device = Device(client, root, plant["prefix"])
        await client.subscribe(f"{root}/{plant['prefix']}/devices/+/register/+", qos=1)
        for name in names:
            await client.publish(device.topic(name), json.dumps(register_body(plant)), qos=1)
        published_while_gateway_away = not gateway.connected.is_set()
        replies = await collect_replies(client, len(names))
    return [{**r, "queued": published_while_gateway_away} for r in replies]


async def test_broker_restart_loses_no_accepted_registration(
    settings: Settings, tmp_path: Path
) -> None:
    """The gateway's persistent session (fixed client id, session expiry, Mosquitto with
    persistence) keeps its subscriptions over the restart, so registrations the broker
    accepted while the gateway was still reconnecting are delivered when it is back."""
    require_mosquitto()  # the binary; this test runs its own broker on a free port
    port = free_port()
    broker = mosquitto(port, tmp_path)
    root = f"idnode-restart-{secrets.token_hex(4)}/v1"
    await _empty_tables(settings.database_url)
    plant = await provisioned(settings)
    gateway_settings = settings.model_copy(
        update={
            "mqtt_url": f"mqtt://127.0.0.1:{port}",
            "mqtt_topic_root": root,
            "mqtt_client_id": f"idnode-restart-{secrets.token_hex(4)}",
            "mqtt_max_backoff": 3.0,
        }
    )
    application = create_app(gateway_settings)
    try:
        async with application.router.lifespan_context(application):
            gateway = application.state.gateway
            await asyncio.wait_for(gateway.connected.wait(), 10)
            before = await register_batch(port, root, plant, [f"R-{n}" for n in range(20)], gateway)
            broker.terminate()
            broker.wait(timeout=10)
            await asyncio.sleep(3.5)  # the gateway's back-off grows to its 3 s cap
            broker = mosquitto(port, tmp_path)
            after = await register_batch(port, root, plant, [f"S-{n}" for n in range(20)], gateway)
            counters = gateway.counters
    finally:
        broker.terminate()
        broker.wait(timeout=10)
    assert all(r["created"] for r in before + after)
    assert len({r["handle"] for r in before + after}) == 40
    assert after[0]["queued"]  # published while the gateway was away: held by its session
    assert counters.registered == 40
    assert await count_devices(settings) == 40
