"""The outbox reaches the top-level node: every prefix allocation and identifier change, in
order, signed, exactly once, through an outage of the top-level node (issue 5)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import select

from app.settings import Settings
from app.storage.models import OutboxEvent
from tests.api.test_batch import food, send_ndjson
from tests.conftest import bearer, create_enterprise, url_value
from tests.reporting.conftest import reporting_to
from tests.reporting.recorder import Recorder, eventually


@pytest.fixture
def settings(settings: Settings, recorder: Recorder) -> Settings:
    return reporting_to(recorder, settings, report_batch_size=7)


async def outbox_rows(app: Any) -> list[OutboxEvent]:
    async with app.state.node.database.read_session() as session:
        return list((await session.execute(select(OutboxEvent).order_by(OutboxEvent.id))).scalars())


async def register(client: httpx.AsyncClient, enterprise: dict[str, Any], suffix: str) -> str:
    handle = f"{enterprise['prefix']}/{suffix}"
    answer = await client.put(
        f"/api/handles/{handle}",
        json={"values": [url_value(f"https://example.com/{suffix}")]},
        headers=bearer(enterprise),
    )
    assert answer.status_code in {200, 201}, answer.text
    return handle


async def test_changes_arrive_in_order_signed_once(
    app: Any, client: httpx.AsyncClient, recorder: Recorder
) -> None:
    recorder.public_pem = (await client.get("/api/v1/node/key")).text
    dairy = await create_enterprise(client)
    first = await register(client, dairy, "MILK-1")
    await register(client, dairy, "MILK-2")
    await client.put(
        f"/api/handles/{first}",
        json={"values": [url_value("https://example.com/moved")]},
        headers=bearer(dairy),
    )
    await client.delete(f"/api/handles/{first}", headers=bearer(dairy))
    await send_ndjson(client, dairy, [food(f"{dairy['prefix']}/LOT-{i}") for i in range(10)])

    rows = await outbox_rows(app)
    await eventually(lambda: len(recorder.accepted()) == len(rows), what="every event")

    received = recorder.events
    assert [e["id"] for e in received] == [r.event_id for r in rows]  # each once, in order
    assert [e["seq"] for e in received] == sorted(e["seq"] for e in received)
    assert all(d.signature_valid for d in recorder.deliveries)
    assert all(len(d.body["events"]) <= 7 for d in recorder.deliveries)
    assert {d.body["node"] for d in recorder.deliveries} == {"88.999"}
    assert all(d.headers["idempotency-key"] == d.body["batch"] for d in recorder.deliveries)
    changes = [(e["kind"], e["data"].get("handle")) for e in received]
    allocations = [e for e in received if e["kind"] == "prefix.allocated"]
    assert [e["data"] for e in allocations] == [
        {"prefix": dairy["prefix"], "enterprise": "Yili Dairy"}
    ]
    # The allocation comes before the enterprise's admin identity it created with it.
    assert received.index(allocations[0]) < changes.index(
        ("identifier.create", f"{dairy['prefix']}/ADMIN")
    )
    mine = [c for c in changes if c[1] and c[1].startswith(dairy["prefix"] + "/M")]
    assert mine == [
        ("identifier.create", first),
        ("identifier.create", f"{dairy['prefix']}/MILK-2"),
        ("identifier.update", first),
        ("identifier.delete", first),
    ]
    lots = [h for k, h in changes if h and "/LOT-" in h and k == "identifier.create"]
    assert len(lots) == 10
    await eventually(lambda: app.state.reporting.reporter.delivered == len(rows))
    assert all(r.delivered_at is not None for r in await outbox_rows(app))


async def test_an_unchanged_write_reports_nothing(
    app: Any, client: httpx.AsyncClient, recorder: Recorder
) -> None:
    dairy = await create_enterprise(client)
    await register(client, dairy, "SAME")
    before = len(await outbox_rows(app))
    await register(client, dairy, "SAME")  # a retried PUT with the same values
    assert len(await outbox_rows(app)) == before


async def test_events_wait_while_the_top_level_node_is_down(
    app: Any, client: httpx.AsyncClient, recorder: Recorder
) -> None:
    recorder.public_pem = (await client.get("/api/v1/node/key")).text
    dairy = await create_enterprise(client)
    await eventually(lambda: len(recorder.events) >= 1, what="the first delivery")
    recorder.stop()
    waiting = [await register(client, dairy, f"OUTAGE-{i}") for i in range(5)]
    reporter = app.state.reporting.reporter

    async def attempts() -> int:
        return max(r.attempts for r in await outbox_rows(app) if r.delivered_at is None)

    async def retried_three_times() -> bool:
        return await attempts() >= 3

    # Retried with back-off, every attempt counted on the waiting events.
    await eventually(retried_three_times, what="three attempts")
    assert reporter.errors >= 3
    pending = [r for r in await outbox_rows(app) if r.delivered_at is None]
    assert {r.data.get("handle") for r in pending} >= set(waiting)
    assert pending[0].last_error  # the head of the queue says why it waits

    recorder.start()
    rows = await outbox_rows(app)
    await eventually(lambda: len(recorder.accepted()) == len(rows), what="the backlog")
    ids = [e["id"] for e in recorder.events]
    assert len(ids) == len(set(ids)) == len(rows)  # nothing lost, nothing twice
    assert all(d.signature_valid for d in recorder.deliveries)
    await eventually(lambda: reporter.delivered == len(rows))


async def test_the_public_key_is_served_and_stable(client: httpx.AsyncClient) -> None:
    first = await client.get("/api/v1/node/key")
    assert first.status_code == 200
    assert first.text.startswith("-----BEGIN PUBLIC KEY-----")
    assert "PRIVATE" not in first.text
    assert len(first.headers["x-idnode-key-id"]) == 16
    assert (await client.get("/api/v1/node/key")).text == first.text


@pytest.mark.parametrize(
    "url", ["http://top-level.example/reports", "ftp://127.0.0.1/x", "reports", "https://"]
)
def test_the_report_url_must_be_https_off_loopback(url: str) -> None:
    with pytest.raises(ValidationError, match="IDNODE_UPSTREAM_REPORT_URL"):
        Settings(upstream_report_url=url)


def test_https_and_loopback_http_report_urls_are_accepted() -> None:
    for url in ("https://top-level.example/reports", "http://127.0.0.1:8080/reports"):
        assert Settings(upstream_report_url=url).upstream_report_url == url
