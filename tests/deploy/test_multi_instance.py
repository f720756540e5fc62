"""Several idnode processes on one machine, as the deployments in deploy/ run them.

Two `idnode serve --no-broker` on one PostgreSQL, reached only through their own ports: what
one accepts, the other answers at once, and its cached old value is gone within 100 ms.
Two `idnode gateway` on one broker, one shared subscription: every device registers once,
and both processes do part of the work.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest

from app.cli import migrate_database
from app.settings import Settings
from tests.api.test_invalidation import (
    LIMIT,
    Pair,
    cached_on_b,
    node_env,
    put,
    report,
    url_of,
    wait_on_b,
)
from tests.conftest import (
    OPERATOR,
    OPERATOR_TOKEN,
    LiveNode,
    free_port,
    fresh_pg_database,
)
from tests.gateways.conftest import Device, register_body
from tests.gateways.test_scale_out import (
    count_devices,
    mosquitto,
    provisioned,
    start_gateway,
    wait_for,
)

pytestmark = pytest.mark.slow

ROUNDS = 5
DEVICES = 100


@pytest.fixture
def database() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database of this test's own; its URL."""
    with fresh_pg_database("multi") as (_, url):
        migrate_database(Settings(database_url=url))
        yield url


@pytest.fixture
def two_nodes(tmp_path: Path, database: str) -> Iterator[Pair]:
    nodes = []
    try:
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            node = LiveNode(node_env(database), tmp_path / name)
            nodes.append(node)
            # As in deploy/: migrated beforehand, no embedded broker.
            node.start("--no-migrate", "--no-broker")
        a, b = nodes
        created = httpx.post(
            f"{a.url}/api/v1/enterprises", json={"name": "Dairy"}, headers=OPERATOR
        )
        assert created.status_code == 201, created.text
        plant = created.json()
        token = {"Authorization": f"Bearer {plant['token']}"}
        yield Pair(a, b, database.rsplit("/", 1)[1], plant["prefix"], token)
    finally:
        for node in nodes:
            node.stop()


def test_what_one_node_writes_the_other_answers_and_forgets_the_old_value_within_100ms(
    two_nodes: Pair, capsys: pytest.CaptureFixture[str]
) -> None:
    pair = two_nodes
    with httpx.Client(timeout=5) as http:
        # Registered through A, resolvable through B at once (B never saw it before).
        put(pair, "MILK-1", "https://trace.example.com/milk/1")
        answer = http.get(pair.handle_url(pair.b, "MILK-1"))
        assert answer.status_code == 200, answer.text
        assert url_of(answer) == "https://trace.example.com/milk/1"

        latencies = []
        current = "https://trace.example.com/milk/1"
        for round_ in range(ROUNDS):
            cached_on_b(pair, http, "MILK-1", current)
            current = f"https://trace.example.com/milk/{round_ + 2}"
            # wait_on_b's clock starts once A has answered the write.
            put(pair, "MILK-1", current)
            elapsed, _ = wait_on_b(
                pair, http, "MILK-1", lambda r, want=current: url_of(r) == want, timeout=5
            )
            latencies.append(elapsed)
    with capsys.disabled():
        print("\n" + report("two serve processes, A's write -> B's answer", latencies))
    assert max(latencies) < LIMIT, report("A -> B", latencies)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[int]:
    """A Mosquitto of this test's own on a free port (no other test's messages)."""
    if shutil.which("mosquitto") is None:
        if os.environ.get("CI"):
            pytest.fail("the mosquitto binary is missing (CI requires it)")
        pytest.skip("the mosquitto binary is missing")
    port = free_port()
    process = mosquitto(port, tmp_path)
    yield port
    process.terminate()
    process.wait(timeout=10)


async def replies_until_quiet(
    client: aiomqtt.Client, expected: int, quiet: float = 1.0
) -> list[tuple[str, dict[str, Any]]]:
    """Every reply: (outcome, body), until ``expected`` arrived and then ``quiet`` seconds
    passed without another (a duplicate would arrive in that time)."""
    replies: list[tuple[str, dict[str, Any]]] = []
    async with asyncio.timeout(120):
        while True:
            try:
                async with asyncio.timeout(quiet if len(replies) >= expected else None):
                    message = await anext(client.messages)
            except TimeoutError:
                return replies
            outcome = message.topic.value.rsplit("/", 1)[1]
            replies.append((outcome, json.loads(bytes(message.payload))))  # type: ignore[arg-type]


async def test_two_gateways_on_a_shared_subscription_split_the_registrations(
    tmp_path: Path, database: str, broker: int, capsys: pytest.CaptureFixture[str]
) -> None:
    plant = await provisioned(Settings(database_url=database, admin_token=OPERATOR_TOKEN))
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDNODE_")}
    env.update(
        IDNODE_DATABASE_URL=database,
        IDNODE_MQTT_URL=f"mqtt://127.0.0.1:{broker}",
        IDNODE_MQTT_SHARED_GROUP="idnode",
    )
    logs = [tmp_path / "gateway-1.log", tmp_path / "gateway-2.log"]
    gateways = [
        start_gateway({**env, "IDNODE_MQTT_CLIENT_ID": f"idnode-gateway-{n}"}, log)
        for n, log in enumerate(logs, 1)
    ]
    try:
        for process, log in zip(gateways, logs, strict=True):
            wait_for(log, "gateways.mqtt.connected", process)
        async with aiomqtt.Client(
            "127.0.0.1", broker, protocol=aiomqtt.ProtocolVersion.V5
        ) as client:
            device = Device(client, "idnode/v1", plant["prefix"])
            await client.subscribe(f"idnode/v1/{plant['prefix']}/devices/+/register/+", qos=1)
            for n in range(DEVICES):
                body = register_body(plant, requestId=f"req-{n}")
                await client.publish(device.topic(f"SN-{n:04d}"), json.dumps(body), qos=1)
            replies = await replies_until_quiet(client, DEVICES)
    finally:
        for process in gateways:
            process.send_signal(signal.SIGTERM)
        for process in gateways:
            process.wait(timeout=30)

    request_ids = sorted(body["requestId"] for _, body in replies)
    assert request_ids == sorted(f"req-{n}" for n in range(DEVICES)), "missing or duplicate replies"
    assert {outcome for outcome, _ in replies} == {"accepted"}
    assert len({body["handle"] for _, body in replies}) == DEVICES
    assert all(body["created"] for _, body in replies)
    assert await count_devices(Settings(database_url=database)) == DEVICES

    # Each process logs what it did when it stops: both took part, neither did any twice.
    done = [
        json.loads(log.read_text().split("gateway stopped ", 1)[1].splitlines()[0]) for log in logs
    ]
    shares = [counters["registered"] for counters in done]
    with capsys.disabled():
        print(f"\nregistrations per gateway: {shares} of {DEVICES}")
    assert sum(shares) == DEVICES
    assert all(share > 0 for share in shares), shares
    assert all(counters["replayed"] == 0 for counters in done)
