"""``/api/v1/templates``: bundled, node and enterprise templates, versions, disabled items,
and templates as resolvable ``META_`` records (issue 3)."""

from __future__ import annotations

import json
from typing import Any

import httpx

from app.registry.templates import FOOD_BATCH
from tests.conftest import OPERATOR, bearer, create_enterprise

BUNDLED_IDS = ["device", "drug.batch", "food.batch", "food.product", "vaccine.unit",
               "vetdrug.package"]  # fmt: skip
BATCH = FOOD_BATCH["example"]
LOT_SIZE = {
    "index": 2009,
    "name": "lotSize",
    "label_zh": "批量",
    "label_en": "Lot size",
    "type": "number",
    "required": True,
}


def widget(prefix: str, **changes: Any) -> dict[str, Any]:
    return {
        "id": f"{prefix}/widget",
        "industry": "C34",
        "title": {"zh": "零件", "en": "Widget"},
        "items": [
            {"index": 2000, "name": "serial", "label_zh": "序列号", "label_en": "Serial",
             "type": "string", "required": True, "unique": True},
            {"index": 2001, "name": "colour", "label_zh": "颜色", "label_en": "Colour",
             "type": "enum", "constraints": {"enum": ["red", "blue"]}},
        ],
        "example": {"serial": "W-1", "colour": "red"},
        **changes,
    }  # fmt: skip


async def ids(client: httpx.AsyncClient, **headers: str) -> list[str]:
    answer = await client.get("/api/v1/templates", headers=headers)
    assert answer.status_code == 200, answer.text
    return sorted(t["id"] for t in answer.json())


async def register(
    client: httpx.AsyncClient, enterprise: dict[str, Any], template: str, attributes: Any
) -> httpx.Response:
    return await client.post(
        "/api/v1/identifiers",
        json={"prefix": enterprise["prefix"], "template": template, "attributes": attributes},
        headers=bearer(enterprise),
    )


async def test_the_bundled_templates_are_there_for_everyone(client: httpx.AsyncClient) -> None:
    assert await ids(client) == BUNDLED_IDS
    batch = (await client.get("/api/v1/templates/food.batch")).json()
    assert batch["version"] == 1
    assert batch["industry"] == "C14"
    assert batch["owner"] == "node"
    assert batch["example"] == BATCH
    production = next(i for i in batch["items"] if i["name"] == "productionDate")
    assert production["constraints"] == {"notAfter": "expiryDate"}
    assert production["label_zh"] == "生产日期"
    drug = (await client.get("/api/v1/templates/drug.batch")).json()
    trace = next(i for i in drug["items"] if i["name"] == "traceCode")
    assert trace["unique"] is True
    assert trace["constraints"]["pattern"] == r"8\d{19}"
    missing = await client.get("/api/v1/templates/food.batch", params={"version": 2})
    assert missing.status_code == 404
    assert missing.json()["error"] == "TemplateNotFound"


async def test_templates_are_resolvable_meta_records(client: httpx.AsyncClient) -> None:
    resolved = await client.get("/api/handles/88.999/META_food.batch")
    assert resolved.status_code == 200
    values = {v["index"]: v for v in resolved.json()["values"]}
    assert values[1]["type"] == "TEMPLATE_LATEST"
    assert values[1]["data"]["value"] == "food.batch@1"
    definition = json.loads(values[10001]["data"]["value"])
    assert definition == (await client.get("/api/v1/templates/food.batch")).json()


async def test_only_the_operator_adds_node_templates(client: httpx.AsyncClient) -> None:
    dairy = await create_enterprise(client)
    body = {**widget("x"), "id": "machine.part"}
    assert (await client.post("/api/v1/templates", json=body)).status_code == 401
    refused = await client.post("/api/v1/templates", json=body, headers=bearer(dairy))
    assert refused.status_code == 403
    assert "its prefix" in refused.json()["detail"]
    created = await client.post("/api/v1/templates", json=body, headers=OPERATOR)
    assert created.status_code == 201, created.text
    assert created.json()["owner"] == "node"
    assert "machine.part" in await ids(client)
    assert (await client.get("/api/handles/88.999/META_machine.part")).status_code == 200


async def test_an_enterprise_template_is_its_own(client: httpx.AsyncClient) -> None:
    maker = await create_enterprise(client, "Widget Maker")
    other = await create_enterprise(client, "Other Maker")
    name = f"{maker['prefix']}/widget"
    created = await client.post(
        "/api/v1/templates", json=widget(maker["prefix"]), headers=bearer(maker)
    )
    assert created.status_code == 201, created.text
    assert created.json()["owner"] == maker["prefix"]

    assert name in await ids(client, **bearer(maker))
    assert name in await ids(client, **OPERATOR)
    assert name not in await ids(client, **bearer(other))
    assert name not in await ids(client)
    assert (await client.get(f"/api/v1/templates/{name}", headers=bearer(other))).status_code == (
        404
    )
    assert (await client.get(f"/api/v1/templates/{name}", headers=bearer(maker))).status_code == (
        200
    )

    mine = await register(client, maker, name, {"serial": "W-1", "colour": "blue"})
    assert mine.status_code == 201, mine.text
    theirs = await register(client, other, name, {"serial": "W-2"})
    assert theirs.status_code == 404

    meta = f"/api/handles/{maker['prefix']}/META_widget"
    public = {v["type"] for v in (await client.get(meta)).json()["values"]}
    assert "TEMPLATE_DEFINITION" not in public
    owned = {v["type"] for v in (await client.get(meta, headers=bearer(maker))).json()["values"]}
    assert "TEMPLATE_DEFINITION" in owned

    squatting = await client.post(
        "/api/v1/templates", json=widget(maker["prefix"]), headers=bearer(other)
    )
    assert squatting.status_code == 403


async def test_malformed_templates_are_refused_with_the_reason(
    client: httpx.AsyncClient,
) -> None:
    bad_example = {**widget("x"), "id": "part", "example": {"colour": "green"}}
    answer = await client.post("/api/v1/templates", json=bad_example, headers=OPERATOR)
    assert answer.status_code == 422
    assert answer.json()["error"] == "InvalidTemplate"
    assert "serial" in answer.json()["detail"]
    assert "colour" in answer.json()["detail"]
    no_items = await client.post(
        "/api/v1/templates", json={**widget("x"), "id": "part", "items": []}, headers=OPERATOR
    )
    assert "items must be a non-empty list" in no_items.json()["detail"]
    no_example = {k: v for k, v in widget("x").items() if k != "example"}
    answer = await client.post(
        "/api/v1/templates", json={**no_example, "id": "part"}, headers=OPERATOR
    )
    assert "example is required" in answer.json()["detail"]
    assert (await ids(client)) == BUNDLED_IDS


async def test_a_new_version_leaves_older_identifiers_valid(client: httpx.AsyncClient) -> None:
    dairy = await create_enterprise(client)
    old = await register(client, dairy, "food.batch", BATCH)
    handle = old.json()["handle"]

    dropped = {**FOOD_BATCH, "items": FOOD_BATCH["items"][:-1]}  # without origin
    refused = await client.post("/api/v1/templates", json=dropped, headers=OPERATOR)
    assert refused.status_code == 422
    assert "must keep every item" in refused.json()["detail"]

    second = {**FOOD_BATCH, "items": [*FOOD_BATCH["items"], LOT_SIZE]}
    second["example"] = {**BATCH, "lotSize": 500}
    created = await client.post("/api/v1/templates", json=second, headers=OPERATOR)
    assert created.status_code == 201, created.text
    assert created.json()["version"] == 2

    shown = (await client.get(f"/api/v1/identifiers/{handle}")).json()
    assert shown["template"]["version"] == 1
    assert shown["attributes"]["batchNumber"]["label_en"] == "Batch number"
    patched = await client.patch(
        f"/api/v1/identifiers/{handle}",
        json={"attributes": {"quantity": 10}},
        headers=bearer(dairy),
    )
    assert patched.status_code == 200, patched.text  # validated against version 1

    fresh = await register(client, dairy, "food.batch", BATCH)
    assert fresh.json()["fields"] == [
        {"name": "lotSize", "message": "is required (Lot size / 批量)"}
    ]
    pinned = await register(client, dairy, "food.batch@1", BATCH)
    assert pinned.status_code == 201
    first = await client.get("/api/v1/templates/food.batch", params={"version": 1})
    assert len(first.json()["items"]) == len(FOOD_BATCH["items"])

    meta = await client.get("/api/handles/88.999/META_food.batch")
    values = {v["index"]: v for v in meta.json()["values"]}
    assert values[1]["data"]["value"] == "food.batch@2"
    assert {10001, 10002} <= set(values)


async def test_a_disabled_item_is_refused_but_kept_where_held(client: httpx.AsyncClient) -> None:
    dairy = await create_enterprise(client)
    handle = (await register(client, dairy, "food.batch", BATCH)).json()["handle"]
    url = "/api/v1/templates/food.batch/items/origin"

    assert (await client.patch(url, json={"disabled": True})).status_code == 401
    refused = await client.patch(url, json={"disabled": True}, headers=bearer(dairy))
    assert refused.status_code == 403
    disabled = await client.patch(url, json={"disabled": True}, headers=OPERATOR)
    assert disabled.status_code == 200, disabled.text
    origin = next(i for i in disabled.json()["items"] if i["name"] == "origin")
    assert origin["disabled"] is True

    new = await register(client, dairy, "food.batch", BATCH)
    assert "disabled" in new.json()["fields"][0]["message"]
    assert new.json()["fields"][0]["name"] == "origin"
    without = {k: v for k, v in BATCH.items() if k != "origin"}
    assert (await register(client, dairy, "food.batch", without)).status_code == 201

    kept = (await client.get(f"/api/v1/identifiers/{handle}")).json()
    assert kept["attributes"]["origin"]["value"] == BATCH["origin"]
    patched = await client.patch(
        f"/api/v1/identifiers/{handle}",
        json={"attributes": {"quantity": 10}},
        headers=bearer(dairy),
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["attributes"]["origin"]["value"] == BATCH["origin"]

    unknown = await client.patch(
        "/api/v1/templates/food.batch/items/flavour", json={"disabled": True}, headers=OPERATOR
    )
    assert unknown.status_code == 404
