"""The NB-IoT ingest queue is durable: a push answered 200 is applied even when the node that
answered stops first, exactly by one worker at a time, as whoever the account is by then."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from app.settings import Settings
from tests.conftest import (
    _empty_tables,
    asgi_client,
    bearer,
    create_enterprise,
    create_provisioning_key,
    running_app,
)
from tests.gateways.conftest import configure_nbiot, fixture_json

TOKEN = "ctw-secret-1"


def imei(n: int) -> str:
    """A valid IMEI (15 digits, Luhn check digit last), one per ``n``."""
    body = f"86123405{n:06d}"
    total = 0
    for position, char in enumerate(reversed(body), start=1):
        value = int(char) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return body + str(-total % 10)


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    """A node (its lifespan running) on the settings' database, and a client of it."""
    async with (
        running_app(settings, emptied=False) as application,
        asgi_client(application) as http,
    ):
        yield application, http


async def stop_worker() -> None:
    """The node's NB-IoT worker stops, as when the process goes down: pushes are still
    answered, and nothing applies them here."""
    (worker,) = [t for t in asyncio.all_tasks() if t.get_name() == "gateways.nbiot"]
    worker.cancel()
    await asyncio.gather(worker, return_exceptions=True)


async def ctwing_account(http: httpx.AsyncClient) -> dict[str, Any]:
    """An enterprise whose CTWing account pushes to the node."""
    plant = await create_enterprise(http, "Cold Chain Co")
    key = await create_provisioning_key(http, plant, "nb-iot")
    plant = {**plant, "key": key["key"]}
    await configure_nbiot(http, plant, "ctwing", TOKEN)
    return plant


async def push(http: httpx.AsyncClient, plant: dict[str, Any], device: str) -> httpx.Response:
    """CTWing's dataReport of ``device`` (the real payload, another IMEI)."""
    body = {**fixture_json("ctwing/datareport-decoded.json"), "IMEI": device}
    return await http.post(
        f"/api/v1/ingest/ctwing/{plant['prefix']}", params={"token": TOKEN}, json=body
    )


async def shown(http: httpx.AsyncClient, plant: dict[str, Any], device: str) -> dict[str, str]:
    """The device's record as a resolver sees it; {} when there is none."""
    answer = await http.get(f"/api/handles/{plant['prefix']}/DEV-imei-{device}")
    if answer.status_code == 404:
        return {}
    assert answer.status_code == 200, answer.text
    return {v["type"]: v["data"]["value"] for v in answer.json()["values"]}


async def test_push_answered_is_applied_after_a_restart(settings: Settings) -> None:
    await _empty_tables(settings.database_url)
    async with running(settings) as (_, http):
        plant = await ctwing_account(http)
        await stop_worker()
        assert (await push(http, plant, imei(1))).status_code == 200
        assert await shown(http, plant, imei(1)) == {}  # not applied by this node

    async with running(settings) as (node, http):
        await asyncio.wait_for(node.state.nbiot.drained(), 30)
        record = await shown(http, plant, imei(1))
        assert record["network"] == "nbiot"
        assert record["online"] == "true"


@pytest.mark.slow  # stops and starts a node, over 3 s
async def test_pushes_a_stopping_node_had_taken_are_applied_at_once_by_the_next(
    settings: Settings,
) -> None:
    await _empty_tables(settings.database_url)
    devices = [imei(n) for n in range(20)]
    async with running(settings) as (_, http):
        plant = await ctwing_account(http)
        for device in devices:
            assert (await push(http, plant, device)).status_code == 200
    # Stopped in the middle of applying them: what it took and had not applied is given back
    # for the next node, which would otherwise wait out the one-minute lease.
    async with running(settings) as (node, http):
        await asyncio.wait_for(node.state.nbiot.drained(), 20)
        records = [await shown(http, plant, device) for device in devices]
        assert [r.get("online") for r in records] == ["true"] * len(devices)


async def test_push_for_an_account_revoked_while_queued_is_not_applied(
    settings: Settings,
) -> None:
    await _empty_tables(settings.database_url)
    async with running(settings) as (_, http):
        plant = await ctwing_account(http)
        await stop_worker()
        assert (await push(http, plant, imei(2))).status_code == 200
        revoked = await http.delete(
            f"/api/v1/enterprises/{plant['prefix']}/provisioning-keys/{plant['key']}",
            headers=bearer(plant),
        )
        assert revoked.is_success, revoked.text

    async with running(settings) as (node, http):
        await asyncio.wait_for(node.state.nbiot.drained(), 30)
        assert await shown(http, plant, imei(2)) == {}
        # Dropped, not left waiting: pushes now are refused at the door.
        assert (await push(http, plant, imei(2))).status_code == 403


async def test_full_queue_answers_busy_until_pushes_are_applied(settings: Settings) -> None:
    small = settings.model_copy(update={"nbiot_queue_limit": 2})
    await _empty_tables(settings.database_url)
    async with running(small) as (_, http):
        plant = await ctwing_account(http)
        await stop_worker()
        assert (await push(http, plant, imei(3))).status_code == 200
        assert (await push(http, plant, imei(4))).status_code == 200
        busy = await push(http, plant, imei(5))
        assert busy.status_code == 503
        assert busy.json()["error"] == "IngestQueueFull"
        assert busy.headers["retry-after"] == "1"

    async with running(small) as (node, http):
        await asyncio.wait_for(node.state.nbiot.drained(), 30)
        assert (await shown(http, plant, imei(3)))["online"] == "true"
        assert (await shown(http, plant, imei(4)))["online"] == "true"
        assert await shown(http, plant, imei(5)) == {}
        assert (await push(http, plant, imei(5))).status_code == 200  # the platform's retry
        await asyncio.wait_for(node.state.nbiot.drained(), 30)
        assert (await shown(http, plant, imei(5)))["online"] == "true"


@pytest.mark.slow  # two nodes' ingest loops, about 15 s
async def test_two_nodes_on_one_database_apply_each_push_once(settings: Settings) -> None:
    eager = settings.model_copy(update={"nbiot_poll_interval": 0.05})
    await _empty_tables(settings.database_url)
    devices = [imei(100 + n) for n in range(200)]
    async with running(eager) as (first, one), running(eager) as (second, two):
        plant = await ctwing_account(one)
        for n, device in enumerate(devices):
            assert (await push(one if n % 2 else two, plant, device)).status_code == 200
        await asyncio.wait_for(
            asyncio.gather(first.state.nbiot.drained(), second.state.nbiot.drained()), 120
        )
        queues = (first.state.nbiot, second.state.nbiot)
        assert sum(q.applied for q in queues) == len(devices)
        assert sum(q.registered for q in queues) == len(devices)
        assert sum(q.failed for q in queues) == 0
        records = [await shown(two, plant, device) for device in devices]
        assert [r.get("online") for r in records] == ["true"] * len(devices)
