"""``GET /metrics``: what a Prometheus scrape of one node process shows after real traffic.

Metrics live as long as the process (as in production), so every test compares the scrape
after its own requests with one taken before them.
"""

from __future__ import annotations

import asyncio
import http.server
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.main import create_app
from app.settings import Settings
from app.storage.models import Device
from tests.conftest import OPERATOR, bearer, create_enterprise, free_port, url_value

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def grown(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def resolutions(before: Samples, after: Samples) -> dict[str, float]:
    outcomes = ("hit", "miss", "not_found", "upstream", "referral", "error")
    return {
        o: grown(before, after, "idnode_resolutions_total", outcome=o)
        for o in outcomes
        if grown(before, after, "idnode_resolutions_total", outcome=o)
    }


async def put_handle(client: httpx.AsyncClient, ent: dict[str, Any], suffix: str) -> str:
    handle = f"{ent['prefix']}/{suffix}"
    response = await client.put(
        f"/api/handles/{handle}", json={"values": [url_value("https://example.com/p")]},
        headers=bearer(ent),
    )  # fmt: skip
    assert response.status_code == 201, response.text
    return handle


async def test_resolutions_are_counted_by_outcome_on_the_lean_and_routed_paths(
    client: httpx.AsyncClient,
) -> None:
    ent = await create_enterprise(client)
    handle = await put_handle(client, ent, "MILK-1")
    # The write's cache eviction reaches the process asynchronously (NOTIFY or polling);
    # let it pass so it cannot evict what the first resolve below caches.
    await asyncio.sleep(0.5)
    before = await scrape(client)

    assert (await client.get(f"/api/handles/{handle}")).status_code == 200  # miss
    assert (await client.get(f"/api/handles/{handle}")).status_code == 200  # hit, lean path
    assert (await client.get(f"/api/handles/{handle}?pretty=true")).status_code == 200  # routed
    for path in (f"/api/handles/{ent['prefix']}/NOPE", f"/api/handles/{ent['prefix']}/NOPE"):
        assert (await client.get(path)).status_code == 404
    assert (await client.get(f"/api/handles/{ent['prefix']}/NOPE?pretty=1")).status_code == 404
    assert (await client.get("/api/handles/88..1/x")).status_code == 400
    assert (await client.get("/api/handles/88..1/x?pretty=1")).status_code == 400
    # Not this node's prefix and no upstream configured: an error answer.
    assert (await client.get("/api/handles/86.5000/X")).status_code == 400
    after = await scrape(client)

    assert resolutions(before, after) == {"miss": 1, "hit": 2, "not_found": 3, "error": 3}
    assert grown(before, after, "idnode_resolve_duration_seconds_count") == 9
    # Cache hits take microseconds: at least those two land in the smallest bucket.
    assert grown(before, after, "idnode_resolve_duration_seconds_bucket", le="0.0001") >= 2
    assert grown(before, after, "idnode_resolve_duration_seconds_sum") > 0
    assert grown(before, after, "idnode_enterprise_resolutions_total", prefix=ent["prefix"]) == 3
    assert grown(before, after, "idnode_cache_hits_total") >= 2
    assert grown(before, after, "idnode_cache_misses_total") >= 1
    assert value(after, "idnode_cache_entries") >= 1
    assert value(after, "idnode_cache_bytes") > 0


async def test_registrations_are_counted_by_channel(client: httpx.AsyncClient) -> None:
    ent = await create_enterprise(client)
    before = await scrape(client)

    await put_handle(client, ent, "A")
    replaced = await client.put(
        f"/api/handles/{ent['prefix']}/A", json={"values": [url_value("https://example.com/b")]},
        headers=bearer(ent),
    )  # fmt: skip
    assert replaced.status_code == 200  # a replacement is not a new registration
    items = [
        {"template": "food.batch", "prefix": ent["prefix"], "handle": f"{ent['prefix']}/B-{n}"}
        for n in range(3)
    ]
    batch = await client.post(
        "/api/v1/identifiers:batch", content=b"\n".join(orjson.dumps(i) for i in items),
        headers={**bearer(ent), "Content-Type": "application/x-ndjson"},
    )  # fmt: skip
    assert batch.status_code == 200, batch.text
    after = await scrape(client)

    created = batch.text.count('"created":true')
    assert grown(before, after, "idnode_registrations_total", channel="api") == 1
    assert grown(before, after, "idnode_registrations_total", channel="batch") == created
    for channel in ("mqtt", "lorawan", "nbiot"):  # present from the start, for rates
        assert ("idnode_registrations_total", frozenset({("channel", channel)})) in after


async def test_census_and_pool_gauges(app: Any, client: httpx.AsyncClient) -> None:
    for name in ("A", "B"):
        ent = await create_enterprise(client, name=f"Census {name}")
        await put_handle(client, ent, "X")
    await app.state.metrics_pump.census()  # the pump runs it every census_interval

    after = await scrape(client)
    assert value(after, "idnode_enterprises") == 2
    assert value(after, "idnode_identifiers") >= 2  # plus the enterprises' own records
    assert value(after, "idnode_devices_online") == 0
    assert value(after, "idnode_db_pool_size") >= 1
    assert ("idnode_db_pool_in_use", frozenset()) in after


async def test_a_device_silent_since_before_a_restart_counts_offline(
    app: Any, client: httpx.AsyncClient
) -> None:
    """Right after a restart nothing has swept the devices that fell silent while the node
    was down (or runs no gateway): their last sign of life decides, not the stored flag."""
    now = datetime.now(UTC)
    async with app.state.node.database.write_session() as session:
        for name, silent in (("quiet", timedelta(minutes=25)), ("lively", timedelta(seconds=5))):
            session.add(
                Device(
                    prefix="88.999.1", hardware_id_type="serial", hardware_id=name,
                    handle=f"88.999.1/DEV-serial-{name}", network="mqtt", first_seen=now - silent,
                    last_seen=now - silent, published_at=now - silent, online=True,
                )
            )  # fmt: skip
        await session.commit()
    await app.state.metrics_pump.census()

    after = await scrape(client)
    assert value(after, "idnode_devices_online") == 1
    assert value(after, "idnode_devices_offline") == 1


class _Upstream(http.server.BaseHTTPRequestHandler):
    """The top-level node, outside ours: answers one handle, 404 for the rest."""

    def do_GET(self) -> None:
        if self.path == "/api/handles/86.5000/KNOWN":
            body = {"responseCode": 1, "handle": "86.5000/KNOWN", "values": [
                {"index": 1, "type": "URL", "data": {"format": "string", "value": "https://u"}}
            ]}  # fmt: skip
            status = 200
        else:
            body, status = {"responseCode": 100, "message": "not found"}, 404
        payload = orjson.dumps(body)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_upstream_answers_errors_and_up_gauge(settings: Settings, upstream: str) -> None:
    for base, expect_up in ((upstream, 1.0), (f"http://127.0.0.1:{free_port()}", 0.0)):
        node = create_app(settings.model_copy(update={"upstream_url": base}))
        async with (
            node.router.lifespan_context(node),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=node), base_url="http://t") as c,
        ):
            before = await scrape(c)
            known = await c.get("/api/handles/86.5000/KNOWN")
            after = await scrape(c)
        if expect_up:
            assert known.status_code == 200
            assert resolutions(before, after) == {"upstream": 1}
            assert grown(before, after, "idnode_upstream_errors_total") == 0
        else:
            assert known.status_code == 504
            assert resolutions(before, after) == {"error": 1}
            assert grown(before, after, "idnode_upstream_errors_total") == 1
        assert value(after, "idnode_upstream_up") == expect_up
        # Foreign prefixes are not enterprises of this node.
        assert grown(before, after, "idnode_enterprise_resolutions_total", prefix="86.5000") == 0


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_with_metrics_off_nothing_is_served(settings: Settings) -> None:
    node = create_app(settings.model_copy(update={"metrics": False}))
    async with (
        node.router.lifespan_context(node),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=node), base_url="http://t") as c,
    ):
        response = await c.get("/metrics")
        resolved = await c.get("/api/v1/enterprises", headers=OPERATOR)
    assert response.status_code == 404
    assert "IDNODE_METRICS=false" in response.json()["detail"]
    assert resolved.status_code == 200
