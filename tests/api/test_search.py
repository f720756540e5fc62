"""``/api/v1/search``: identifiers by template attributes, paged by cursor, and never
revealing restricted values to callers who may not read them (issue 3)."""

from __future__ import annotations

from typing import Any

import httpx

from app.registry.templates import VACCINE_UNIT
from tests.conftest import OPERATOR, bearer, create_enterprise

UNIT = VACCINE_UNIT["example"]
CLINIC = "Chaoyang District CDC clinic 7"


def unit(batch: str, serial: int, **extra: Any) -> dict[str, Any]:
    return {
        **UNIT,
        "traceCode": f"8100002345{serial:010d}",
        "batchNumber": batch,
        "batch": f"88.999.1/VACCINE-BATCH-{batch}",
        **extra,
    }


async def register(
    client: httpx.AsyncClient, enterprise: dict[str, Any], attributes: dict[str, Any], **extra: Any
) -> str:
    answer = await client.post(
        "/api/v1/identifiers",
        json={
            "prefix": enterprise["prefix"],
            "template": "vaccine.unit",
            "attributes": attributes,
            **extra,
        },
        headers=bearer(enterprise),
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["handle"])


async def search(
    client: httpx.AsyncClient, headers: dict[str, str] | None = None, **params: Any
) -> dict[str, Any]:
    answer = await client.get(
        "/api/v1/search", params={"template": "vaccine.unit", **params}, headers=headers or {}
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


async def test_every_unit_of_a_batch_page_by_page(client: httpx.AsyncClient) -> None:
    maker = await create_enterprise(client, "Beijing Bio")
    wanted = {await register(client, maker, unit("202603A", n)) for n in range(7)}
    for n in range(3):
        await register(client, maker, unit("202603B", 100 + n))

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"attr.batchNumber": "202603A", "limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = await search(client, **params)
        pages += 1
        assert len(page["items"]) <= 3
        seen += [item["handle"] for item in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert pages == 3
    assert sorted(seen) == seen
    assert set(seen) == wanted
    assert len(seen) == 7

    both = await search(
        client, **{"attr.batchNumber": "202603B", "attr.traceCode": unit("x", 101)["traceCode"]}
    )
    assert len(both["items"]) == 1
    item = both["items"][0]
    assert item["attributes"]["batchNumber"]["label_zh"] == "批号"
    by_reference = await search(client, **{"attr.batch": "88.999.1/VACCINE-BATCH-202603B"})
    assert len(by_reference["items"]) == 3
    assert (await search(client, **{"attr.batchNumber": "nothing"}))["items"] == []


async def test_restricted_values_are_searchable_only_by_who_may_read_them(
    client: httpx.AsyncClient,
) -> None:
    maker = await create_enterprise(client, "Beijing Bio")
    other = await create_enterprise(client, "Other Bio")
    handle = await register(client, maker, unit("202603A", 1, administeredAt=CLINIC))
    narrowed = await register(
        client, maker, unit("202603C", 2), visibility={"batchNumber": "restricted"}
    )

    for caller in (None, bearer(other)):
        assert (await search(client, caller, **{"attr.administeredAt": CLINIC}))["items"] == []
        assert (await search(client, caller, **{"attr.batchNumber": "202603C"}))["items"] == []
        public = await search(client, caller, **{"attr.batchNumber": "202603A"})
        assert [i["handle"] for i in public["items"]] == [handle]
        assert "administeredAt" not in public["items"][0]["attributes"]
        assert CLINIC not in str(public)

    for caller in (bearer(maker), OPERATOR):
        found = await search(client, caller, **{"attr.administeredAt": CLINIC})
        assert [i["handle"] for i in found["items"]] == [handle]
        assert found["items"][0]["attributes"]["administeredAt"]["value"] == CLINIC
        hidden = await search(client, caller, **{"attr.batchNumber": "202603C"})
        assert [i["handle"] for i in hidden["items"]] == [narrowed]


async def test_search_refuses_what_it_cannot_answer(client: httpx.AsyncClient) -> None:
    unknown_item = await client.get(
        "/api/v1/search", params={"template": "vaccine.unit", "attr.colour": "red"}
    )
    assert unknown_item.status_code == 422
    assert unknown_item.json()["fields"][0]["name"] == "colour"
    bad_value = await client.get(
        "/api/v1/search", params={"template": "vaccine.unit", "attr.expiryDate": "soon"}
    )
    assert "YYYY-MM-DD" in bad_value.json()["fields"][0]["message"]
    unknown = await client.get("/api/v1/search", params={"template": "nothing"})
    assert unknown.status_code == 404
    no_template = await client.get("/api/v1/search")
    assert no_template.status_code == 422
    bad_cursor = await client.get(
        "/api/v1/search", params={"template": "vaccine.unit", "cursor": "%%%"}
    )
    assert bad_cursor.status_code == 400


async def test_search_follows_writes_through_the_handle_api(client: httpx.AsyncClient) -> None:
    maker = await create_enterprise(client, "Beijing Bio")
    handle = await register(client, maker, unit("202603A", 1))
    values = (await client.get(f"/api/handles/{handle}", headers=bearer(maker))).json()["values"]
    for value in values:
        if value["type"] == "batchNumber":
            value["data"]["value"] = "202603Z"
    replaced = await client.put(
        f"/api/handles/{handle}", json={"values": values}, headers=bearer(maker)
    )
    assert replaced.status_code == 200, replaced.text
    assert (await search(client, **{"attr.batchNumber": "202603A"}))["items"] == []
    moved = await search(client, **{"attr.batchNumber": "202603Z"})
    assert [i["handle"] for i in moved["items"]] == [handle]

    removed = await client.delete(
        f"/api/handles/{handle}", params={"index": 2000}, headers=bearer(maker)
    )
    assert removed.status_code == 422  # traceCode is required by the template
    changed = await client.put(
        f"/api/handles/{handle}",
        params={"index": 2000},
        json=[{"index": 2000, "type": "traceCode", "data": unit("x", 2)["traceCode"]}],
        headers=bearer(maker),
    )
    assert changed.status_code == 200, changed.text
    reused = await register(client, maker, unit("202603B", 1))  # its traceCode is free again
    assert (await search(client, **{"attr.traceCode": unit("x", 1)["traceCode"]}))["items"] == [
        (await client.get(f"/api/v1/identifiers/{reused}")).json()
    ]

    await client.delete(f"/api/handles/{handle}", headers=bearer(maker))
    assert (await search(client, **{"attr.batchNumber": "202603Z"}))["items"] == []
