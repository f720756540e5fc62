"""The database away: every door answers a retryable 503 that names the database (never a 500
or a driver's class name), what is cached is still served, and the node recovers by itself
and says so."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest

from app.cli import migrate_database
from app.main import create_app
from app.settings import Settings
from tests.api.test_lean_path import cache_sync_task, postgres_listener
from tests.conftest import (
    OPERATOR,
    OPERATOR_TOKEN,
    asgi_client,
    bearer,
    create_enterprise,
    create_provisioning_key,
    node_client,
    url_value,
)
from tests.gateways.conftest import require_mosquitto
from tests.gateways.test_nbiot_ingest import ctwing_account, imei, push
from tests.servers import PrivatePostgres, private_postgres

UNAVAILABLE = "the database is unavailable; retry in 5 s"


@pytest.fixture(scope="module")
def postgres() -> Iterator[PrivatePostgres]:
    with private_postgres() as server:
        migrate_database(Settings(database_url=server.url))
        yield server


@pytest.fixture
def pg_settings(postgres: PrivatePostgres) -> Settings:
    require_mosquitto()
    return Settings(
        database_url=postgres.url,
        admin_token=OPERATOR_TOKEN,
        mqtt_url="mqtt://127.0.0.1:1883",
        mqtt_topic_root=f"idnode-test-{secrets.token_hex(4)}/v1",
        mqtt_client_id=f"idnode-test-{secrets.token_hex(4)}",
    )


@pytest.fixture
async def node(pg_settings: Settings, postgres: PrivatePostgres) -> AsyncIterator[Any]:
    application = create_app(pg_settings)
    try:
        async with application.router.lifespan_context(application):
            await asyncio.wait_for(application.state.gateway.connected.wait(), 10)
            await listening(application)
            yield application
    finally:
        if not postgres.running:
            postgres.start()


async def listening(application: Any) -> None:
    """Wait until the cache-invalidation listener is connected: it clears the cache when it
    connects, which would otherwise drop what a test has just had cached."""
    for _ in range(200):
        listener = postgres_listener(cache_sync_task(application))
        if listener is not None:
            await asyncio.wait_for(listener.connected.wait(), 10)
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the cache-invalidation listener never started")


async def register_over_mqtt(settings: Settings, plant: dict[str, Any]) -> tuple[str, Any]:
    topic = f"{settings.mqtt_topic_root}/{plant['prefix']}/devices/SN-{secrets.token_hex(3)}"
    body = {
        "requestId": "r1",
        "provisionKey": plant["key"],
        "provisionSecret": plant["provisionSecret"],
        "hardwareIdType": "serial",
    }
    async with aiomqtt.Client("127.0.0.1", 1883, protocol=aiomqtt.ProtocolVersion.V5) as device:
        await device.subscribe(f"{topic}/register/+", qos=1)
        await device.publish(f"{topic}/register", json.dumps(body).encode(), qos=1)
        async with asyncio.timeout(20):
            async for message in device.messages:
                outcome = message.topic.value.rsplit("/", 1)[1]
                return outcome, json.loads(bytes(message.payload))  # type: ignore[arg-type]
    raise AssertionError("no reply")


async def cached_for_good(http: httpx.AsyncClient, app: Any, handle: str) -> None:
    """Resolve ``handle`` until the node keeps it in its cache: the notice of the write that
    made it comes back to this process too, and evicts it once, perhaps after it was cached
    (on a loaded machine, a while after)."""
    cache = app.state.node.resolver.cache
    for _ in range(50):
        assert (await http.get(f"/api/handles/{handle}")).status_code == 200
        await asyncio.sleep(0.3)
        if handle in cache:
            return
    raise AssertionError(f"{handle} never stayed in the cache")


def assert_unavailable(answer: httpx.Response) -> None:
    assert answer.status_code == 503, answer.text
    assert answer.headers["retry-after"] == "5"
    assert "Error" not in answer.text.replace("DatabaseUnavailable", "")


@pytest.mark.slow
async def test_a_stopped_postgresql_is_a_503_on_every_door_until_it_is_back(
    node: Any, pg_settings: Settings, postgres: PrivatePostgres, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="app.storage.outages")
    async with asgi_client(node) as http:
        plant = await ctwing_account(http)
        created = await create_provisioning_key(http, plant)
        plant |= {"key": created["key"], "provisionSecret": created["secret"]}
        cached, missing = f"{plant['prefix']}/CACHED", f"{plant['prefix']}/MISSING"
        values = {"values": [url_value("https://example.com/a")]}
        assert (
            await http.put(f"/api/handles/{cached}", json=values, headers=bearer(plant))
        ).is_success
        await cached_for_good(http, node, cached)

        postgres.stop()

        # What the cache holds is still served; a miss is a Handle SERVER_TOO_BUSY.
        assert (await http.get(f"/api/handles/{cached}")).status_code == 200
        for path in (f"/api/handles/{missing}", f"/api/handles/{missing}?type=URL"):
            answer = await http.get(path)
            assert_unavailable(answer)
            assert answer.json() == {"responseCode": 3, "handle": missing, "message": UNAVAILABLE}
        written = await http.put(f"/api/handles/{missing}", json=values, headers=bearer(plant))
        assert_unavailable(written)
        assert written.json()["responseCode"] == 3
        for answer in (
            await http.get("/api/v1/enterprises", headers=OPERATOR),
            await http.post(
                "/api/v1/identifiers",
                json={"prefix": plant["prefix"], "template": "food.batch"},
                headers=bearer(plant),
            ),
            await push(http, plant, imei(7)),
        ):
            assert_unavailable(answer)
            assert answer.json() == {"error": "DatabaseUnavailable", "detail": UNAVAILABLE}
        page = await http.get(f"/{missing}")
        assert_unavailable(page)
        assert UNAVAILABLE in page.text
        # The operator can still watch the outage on the dashboard (no database needed).
        login = await http.post("/dashboard/login", data={"token": OPERATOR_TOKEN})
        assert login.status_code == 303, login.text
        assert (await http.get("/dashboard")).status_code == 200
        refused = await http.post("/dashboard/login", data={"token": "idn_not-a-token"})
        assert_unavailable(refused)  # other tokens are checked in the database
        ready = await http.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["reasons"] == [f"database: {UNAVAILABLE}"]
        outcome, reply = await register_over_mqtt(pg_settings, plant)
        assert (outcome, reply["statusCode"], reply["errorCode"]) == (
            "rejected",
            503,
            "DatabaseUnavailable",
        )
        assert reply["errorMessage"] == UNAVAILABLE

        postgres.start()

        written = await http.put(f"/api/handles/{missing}", json=values, headers=bearer(plant))
        assert written.status_code == 201, written.text
        assert (await register_over_mqtt(pg_settings, plant))[0] == "accepted"
        assert (await http.get("/readyz")).status_code == 200
    events = [r.getMessage() for r in caplog.records if r.name == "app.storage.outages"]
    assert events == ["storage.database_unavailable", "storage.database_reachable_again"]


async def test_a_locked_sqlite_file_is_a_503(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{path}",
        admin_token=OPERATOR_TOKEN,
        sqlite_busy_timeout_ms=100,
    )
    await asyncio.to_thread(migrate_database, settings)
    async with node_client(settings) as http:
        plant = await create_enterprise(http)
        other = sqlite3.connect(path, isolation_level=None)  # another program writing
        try:
            other.execute("BEGIN IMMEDIATE")
            values = {"values": [url_value("https://example.com/a")]}
            handle = f"/api/handles/{plant['prefix']}/LOCKED"
            locked = await http.put(handle, json=values, headers=bearer(plant))
            assert_unavailable(locked)
            assert locked.json()["message"] == UNAVAILABLE
            other.execute("ROLLBACK")
            written = await http.put(handle, json=values, headers=bearer(plant))
            assert written.status_code == 201, written.text
        finally:
            other.close()
