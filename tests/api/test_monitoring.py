"""``/healthz`` and ``/readyz``: what a load balancer or Kubernetes probe learns of the node."""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket

import aiomqtt
import httpx
import pytest

from app.main import create_app
from app.settings import Settings
from tests.conftest import (
    OPERATOR_TOKEN,
    _create_pg_database,
    _drop_pg_database,
    free_port,
    migrate_database,
)


async def test_healthz_and_readyz_when_everything_answers(client: httpx.AsyncClient) -> None:
    health = await client.get("/healthz")
    ready = await client.get("/readyz")

    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_readyz_names_a_broker_nothing_listens_on(settings: Settings) -> None:
    port = free_port()
    app = create_app(settings.model_copy(update={"mqtt_url": f"mqtt://127.0.0.1:{port}"}))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
    ):
        ready = await http.get("/readyz")
        health = await http.get("/healthz")

    assert ready.status_code == 503
    body = ready.json()
    assert body["status"] == "unavailable"
    assert body["reasons"] == [
        f"broker: the device gateway is not connected to mqtt://127.0.0.1:{port}"
    ]
    assert health.status_code == 200  # alive, just not ready


async def test_readyz_with_the_real_broker_is_ready(settings: Settings) -> None:
    from tests.gateways.conftest import require_mosquitto

    require_mosquitto()
    app = create_app(settings.model_copy(update={"mqtt_url": "mqtt://127.0.0.1:1883"}))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
    ):
        await asyncio.wait_for(app.state.gateway.connected.wait(), 10)
        ready = await http.get("/readyz")
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_readyz_names_a_database_that_went_away(backend: str) -> None:
    name = f"idnode_ready_{secrets.token_hex(3)}"
    url = await _create_pg_database(name)
    await asyncio.to_thread(migrate_database, Settings(database_url=url))
    app = create_app(Settings(database_url=url, admin_token=OPERATOR_TOKEN))
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
        ):
            assert (await http.get("/readyz")).status_code == 200
            await _drop_pg_database(name)  # terminates the node's connections too

            ready = await http.get("/readyz")
            health = await http.get("/healthz")
    finally:
        await _drop_pg_database(name)

    assert ready.status_code == 503
    (reason,) = ready.json()["reasons"]
    assert reason.startswith("database: ")
    assert name in reason  # 'database "idnode_ready_..." does not exist'
    assert health.status_code == 200


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_taken_embedded_broker_port_leaves_the_node_ready(settings: Settings) -> None:
    """`idnode serve` starts the embedded broker unasked: a Mosquitto already on its port is
    no reason to take the node out of rotation; the dashboard says what happened."""
    with socket.socket() as other_broker:
        other_broker.bind(("127.0.0.1", 0))
        other_broker.listen()
        port = other_broker.getsockname()[1]
        app = create_app(
            settings.model_copy(update={"embedded_broker": True, "embedded_broker_port": port})
        )
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
        ):
            ready = await http.get("/readyz")
            await http.post("/dashboard/login", data={"token": OPERATOR_TOKEN})
            page = await http.get("/dashboard")

    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
    assert f"off: 127.0.0.1:{port} is taken" in page.text


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_the_dashboard_shows_the_embedded_broker(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    app = create_app(
        settings.model_copy(update={"embedded_broker": True, "embedded_broker_port": port})
    )
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
    ):
        await asyncio.wait_for(app.state.gateway.connected.wait(), 10)
        caplog.clear()
        for device in range(3):  # devices come and go; the library internals stay quiet
            async with aiomqtt.Client("127.0.0.1", port, identifier=f"device-{device}"):
                pass
        ready = await http.get("/readyz")
        await http.post("/dashboard/login", data={"token": OPERATOR_TOKEN})
        page = await http.get("/dashboard")

    assert ready.status_code == 200
    assert f"embedded, mqtt://127.0.0.1:{port}" in page.text
    chatter = [r for r in caplog.records if r.name.startswith(("amqtt", "transitions"))]
    assert [r for r in chatter if r.levelno < logging.WARNING] == []
