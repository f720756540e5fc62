"""History of identifiers and resolving as of a past time (``?at=``)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import select

from app.storage import handles as repo
from app.storage import history as history_repo
from app.storage.models import HandleReference, OutboxEvent
from tests.api.factories import (
    GAUGE,
    add_gauge_template,
    history,
    part_of,
    put,
    register,
    register_gauge,
    typed,
    values_by_index,
)
from tests.conftest import OPERATOR, bearer, create_enterprise, url_value

V1 = "https://trace.example.com/milk/1"
V2 = "https://trace.example.com/milk/1-v2"


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def resolve_at(client: httpx.AsyncClient, handle: str, at: str, **params: Any) -> Any:
    return await client.get(f"/api/handles/{quote(handle)}", params={"at": at, **params})


async def test_create_update_delete_are_kept_with_who_when_and_what(
    client: httpx.AsyncClient,
) -> None:
    dairy = await create_enterprise(client)
    start = datetime.now(UTC)
    handle = await register(client, dairy, "MILK-1", [url_value(V1), url_value(V1, 2)])
    await put(client, bearer(dairy), handle, [url_value(V2), url_value(V1, 2)])
    deleted = await client.delete(f"/api/handles/{handle}", headers=OPERATOR)
    assert deleted.status_code == 200, deleted.text

    gone = await client.get(f"/api/handles/{handle}")
    assert gone.status_code == 404
    body = await history(client, handle)
    assert body["handle"] == handle
    assert body["deleted"] is True
    changes = body["changes"]
    assert [c["operation"] for c in changes] == ["create", "update", "delete"]
    assert [c["version"] for c in changes] == [1, 2, 3]
    assert [c["actor"] for c in changes] == [f"enterprise:{dairy['prefix']}"] * 2 + ["operator"]
    assert changes[0]["changed"] == [1, 2, 100]  # 100: the HS_ADMIN the node added
    assert changes[1]["changed"] == [1]
    assert values_by_index(changes[1])[1] == V2
    # The delete entry holds what the record had when it was deleted.
    assert values_by_index(changes[2])[1] == V2
    times = [datetime.fromisoformat(c["at"]) for c in changes]
    assert start <= times[0] <= times[1] <= times[2] <= datetime.now(UTC)


async def test_a_repeated_put_is_not_a_change(client: httpx.AsyncClient) -> None:
    dairy = await create_enterprise(client)
    handle = await register(client, dairy, "MILK-1", [url_value(V1)])
    await put(client, bearer(dairy), handle, [url_value(V1)], status=200)
    assert len((await history(client, handle))["changes"]) == 1


async def test_deleting_some_values_is_an_update_naming_them(client: httpx.AsyncClient) -> None:
    dairy = await create_enterprise(client)
    handle = await register(client, dairy, "MILK-1", [url_value(V1), url_value(V2, 2)])
    answer = await client.delete(f"/api/handles/{handle}?index=2", headers=bearer(dairy))
    assert answer.status_code == 200, answer.text
    last = (await history(client, handle))["changes"][-1]
    assert (last["operation"], last["changed"]) == ("update", [2])
    assert 2 not in values_by_index(last)


async def test_a_recreated_identifier_continues_its_history(client: httpx.AsyncClient) -> None:
    dairy = await create_enterprise(client)
    handle = await register(client, dairy, "MILK-1", [url_value(V1)])
    assert (await client.delete(f"/api/handles/{handle}", headers=bearer(dairy))).is_success
    await put(client, bearer(dairy), handle, [url_value(V2)], status=201)
    body = await history(client, handle)
    assert body["deleted"] is False
    assert [c["operation"] for c in body["changes"]] == ["create", "delete", "create"]


async def test_history_of_an_unknown_identifier_is_404(client: httpx.AsyncClient) -> None:
    dairy = await create_enterprise(client)
    answer = await client.get(f"/api/v1/identifiers/{dairy['prefix']}/NEVER/history")
    assert answer.status_code == 404
    assert answer.json()["error"] == "HandleNotFound"
    assert "NEVER" in answer.json()["detail"]


async def test_resolving_as_of_a_past_time(client: httpx.AsyncClient) -> None:
    dairy = await create_enterprise(client)
    before = datetime.now(UTC) - timedelta(seconds=1)
    handle = await register(client, dairy, "MILK-1", [url_value(V1)])
    between = datetime.now(UTC)
    await put(client, bearer(dairy), handle, [url_value(V2)])
    after_update = datetime.now(UTC)
    assert (await client.delete(f"/api/handles/{handle}", headers=bearer(dairy))).is_success

    then = await resolve_at(client, handle, iso(between))
    assert then.status_code == 200, then.text
    assert then.json()["responseCode"] == 1
    assert values_by_index(then.json())[1] == V1
    later = await resolve_at(client, handle, iso(after_update))
    assert values_by_index(later.json())[1] == V2

    for moment, when in ((before, "before creation"), (datetime.now(UTC), "after deletion")):
        missing = await resolve_at(client, handle, iso(moment))
        assert missing.status_code == 404, when
        assert missing.json()["responseCode"] == 100
        assert "did not exist" in missing.json()["message"], when


async def test_at_takes_offsets_and_filters(client: httpx.AsyncClient) -> None:
    dairy = await create_enterprise(client)
    handle = await register(
        client, dairy, "MILK-1", [url_value(V1), {"index": 5, "type": "BATCH", "data": "B-1"}]
    )
    shanghai = (datetime.now(UTC) + timedelta(seconds=1)).astimezone(ZoneInfo("Asia/Shanghai"))
    # A '+' typed into a URL arrives as a space; both forms mean +08:00.
    for raw in (shanghai.isoformat(), shanghai.isoformat().replace("+", "%2B")):
        answer = await client.get(f"/api/handles/{handle}?at={raw}&type=BATCH")
        assert answer.status_code == 200, (raw, answer.text)
        assert values_by_index(answer.json()) == {5: "B-1"}


async def test_at_is_never_served_from_or_stored_in_the_cache(client: httpx.AsyncClient) -> None:
    dairy = await create_enterprise(client)
    handle = await register(client, dairy, "MILK-1", [url_value(V1)])
    between = iso(datetime.now(UTC))
    await put(client, bearer(dairy), handle, [url_value(V2)])
    current = await client.get(f"/api/handles/{handle}")  # now cached
    assert values_by_index(current.json())[1] == V2

    old = await resolve_at(client, handle, between)
    assert values_by_index(old.json())[1] == V1
    assert "no-cache" in old.headers["cache-control"]
    again = await client.get(f"/api/handles/{handle}")
    assert values_by_index(again.json())[1] == V2


async def test_a_malformed_at_is_a_clear_400(client: httpx.AsyncClient) -> None:
    dairy = await create_enterprise(client)
    handle = await register(client, dairy, "MILK-1", [url_value(V1)])
    answer = await resolve_at(client, handle, "yesterday")
    assert answer.status_code == 400
    assert answer.json()["responseCode"] == 4
    assert "at=" in answer.json()["message"]
    assert "yesterday" in answer.json()["message"]


async def test_at_for_a_prefix_of_another_node_is_refused(client: httpx.AsyncClient) -> None:
    answer = await resolve_at(client, "20.500/X", iso(datetime.now(UTC)))
    assert answer.status_code == 400
    assert answer.json()["responseCode"] == 301


async def test_liveness_writes_can_skip_history_but_keep_references(app: Any) -> None:
    """Device heartbeats write with ``history=False``: the record and its references change,
    the history does not."""
    database = app.state.node.database
    now = datetime.now(UTC)
    values = [
        {
            "index": 1,
            "type": "URL",
            "data": {"format": "string", "value": V1},
            "ttl": 60,
            "timestamp": "2026-11-26T00:00:00Z",
        }
    ]
    async with database.write_session() as session:
        assert await repo.insert(
            session,
            handle="88.999.9/DEV",
            prefix="88.999.9",
            values=values,
            now=now,
            actor="gateway:test",
        )
        await session.commit()
    beat = [
        *values,
        part_of(
            "88.999.9/LINE-1",
            index=2,
            ttl=60,
            timestamp="2026-11-26T00:00:00Z",
            data={"format": "string", "value": "line"},
        ),
    ]
    async with database.write_session() as session:
        await repo.replace(
            session,
            handle="88.999.9/DEV",
            values=beat,
            now=now,
            actor="gateway:test",
            history=False,
        )
        await session.commit()
    async with database.read_session() as session:
        entries = await history_repo.entries(session, "88.999.9/DEV")
        targets = (await session.execute(select(HandleReference.target))).scalars().all()
        reported = (await session.execute(select(OutboxEvent.kind, OutboxEvent.data))).all()
    assert [(e.operation, e.actor) for e in entries] == [("create", "gateway:test")]
    assert targets == ["88.999.9/LINE-1"]
    # Nor is liveness reported to the top-level node: only the creation is.
    assert [(k, d["handle"]) for k, d in reported if d.get("handle") == "88.999.9/DEV"] == [
        ("identifier.create", "88.999.9/DEV")
    ]


async def test_concurrent_writers_get_one_entry_each(client: httpx.AsyncClient) -> None:
    dairy = await create_enterprise(client)
    handle = f"{dairy['prefix']}/MILK-RACE"
    urls = [f"{V1}?writer={i}" for i in range(8)]
    answers = await asyncio.gather(
        *(
            client.put(f"/api/handles/{handle}", json=[url_value(u)], headers=bearer(dairy))
            for u in urls
        )
    )
    assert sorted(a.status_code for a in answers) == [200] * 7 + [201], [a.text for a in answers]
    changes = (await history(client, handle))["changes"]
    assert [c["version"] for c in changes] == list(range(1, 9))
    assert [c["operation"] for c in changes] == ["create"] + ["update"] * 7
    assert {values_by_index(c)[1] for c in changes} == set(urls)


async def test_history_shows_attributes_as_their_json_types(client: httpx.AsyncClient) -> None:
    """Numbers and true/false come back as JSON numbers and booleans in every version, dates
    as the date text; the values list keeps the Handle text."""
    plant = await create_enterprise(client)
    template = await add_gauge_template(client, plant)
    handle = await register_gauge(client, plant, template, serial="H-1", **GAUGE)
    changed = await client.patch(
        f"/api/v1/identifiers/{handle}",
        json={"attributes": {"quantity": 12.5, "online": False}},
        headers=bearer(plant),
    )
    assert changed.status_code == 200, changed.text

    changes = (await history(client, handle))["changes"]
    assert [typed(c) for c in changes] == [
        {"serial": "H-1", "quantity": 11500, "online": True, "madeOn": "2026-03-01"},
        {"serial": "H-1", "quantity": 12.5, "online": False, "madeOn": "2026-03-01"},
    ]
    assert changes[0]["attributes"]["quantity"]["type"] == "number"
    assert values_by_index(changes[0])[2001] == "11500"
    assert values_by_index(changes[0])[2002] == "true"
