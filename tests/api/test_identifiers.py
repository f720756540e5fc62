"""Registering identifiers against templates: ``/api/v1/identifiers`` (issue 3)."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import httpx
import segno

from app.registry.templates import DEVICE, DRUG_BATCH, FOOD_BATCH, FOOD_PRODUCT
from app.settings import Settings
from tests.conftest import OPERATOR, bearer, create_enterprise, node_client

BATCH = FOOD_BATCH["example"]
DRUG = DRUG_BATCH["example"]
OTHER_CODE = "81234567890000000001"


async def register(
    client: httpx.AsyncClient,
    enterprise: dict[str, Any],
    *,
    template: str = "food.batch",
    attributes: dict[str, Any] | None = None,
    expect: int = 201,
    **extra: Any,
) -> dict[str, Any]:
    body = {
        "template": template,
        "attributes": BATCH if attributes is None else attributes,
        **extra,
    }
    if "handle" not in extra:
        body.setdefault("prefix", enterprise["prefix"])
    answer = await client.post("/api/v1/identifiers", json=body, headers=bearer(enterprise))
    assert answer.status_code == expect, answer.text
    return dict(answer.json())


def fields(answer: httpx.Response) -> dict[str, str]:
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["error"] == "TemplateViolation"
    assert body["detail"]
    return {f["name"]: f["message"] for f in body["fields"]}


async def values_of(client: httpx.AsyncClient, handle: str, **headers: str) -> dict[int, Any]:
    resolved = await client.get(f"/api/handles/{handle}", headers=headers)
    assert resolved.status_code == 200, resolved.text
    return {v["index"]: v for v in resolved.json()["values"]}


async def test_attributes_become_handle_values_at_their_indexes(
    client: httpx.AsyncClient,
) -> None:
    dairy = await create_enterprise(client)
    created = await register(client, dairy, url="https://trace.example.com/b/1")
    handle = created["handle"]
    assert handle.startswith(dairy["prefix"] + "/")
    assert created["template"]["id"] == "food.batch"

    public = await values_of(client, handle)
    assert public[1001]["type"] == "TEMPLATE"
    assert public[1001]["data"] == {"format": "string", "value": "food.batch@1"}
    assert public[1]["type"] == "URL"
    assert public[2001]["type"] == "batchNumber"
    assert public[2001]["data"] == {"format": "string", "value": BATCH["batchNumber"]}
    assert public[2004]["data"]["value"] == "12000"
    assert public[2000]["references"] == [{"handle": BATCH["product"], "index": 1}]
    assert 2007 not in public  # inspectionReport is restricted by the template

    owner_view = await values_of(client, handle, **bearer(dairy))
    assert owner_view[2007]["data"]["value"] == BATCH["inspectionReport"]
    assert owner_view[2007]["permissions"] == "1100"

    scanned = await client.get(f"/{handle}")
    assert scanned.status_code == 302
    assert scanned.headers["location"] == "https://trace.example.com/b/1"


async def test_register_at_a_chosen_handle_once(client: httpx.AsyncClient) -> None:
    dairy = await create_enterprise(client)
    handle = f"{dairy['prefix']}/BATCH-B20260301-01"
    created = await register(client, dairy, handle=handle)
    assert created["handle"] == handle
    again = await client.post(
        "/api/v1/identifiers",
        json={"handle": handle, "template": "food.batch", "attributes": BATCH},
        headers=bearer(dairy),
    )
    assert again.status_code == 409
    assert again.json()["error"] == "HandleAlreadyExists"


async def test_every_failing_field_is_named_and_nothing_is_written(
    client: httpx.AsyncClient,
) -> None:
    dairy = await create_enterprise(client)
    handle = f"{dairy['prefix']}/BAD-1"
    answer = await client.post(
        "/api/v1/identifiers",
        json={
            "handle": handle,
            "template": "food.batch",
            "attributes": {
                **BATCH,
                "productionDate": "2026-02-30",
                "quantity": "twelve",
                "packagingLevel": "crate",
                "colour": "red",
                "batchNumber": None,
            },
            "url": "javascript:alert(1)",
        },
        headers=bearer(dairy),
    )
    found = fields(answer)
    assert set(found) == {
        "productionDate",
        "quantity",
        "packagingLevel",
        "colour",
        "batchNumber",
        "url",
    }
    assert "YYYY-MM-DD" in found["productionDate"]
    assert "item, case, pallet" in found["packagingLevel"]
    assert "required" in found["batchNumber"]
    assert (await client.get(f"/api/handles/{handle}")).status_code == 404


async def test_unknown_template_and_missing_target_are_clear_errors(
    client: httpx.AsyncClient,
) -> None:
    dairy = await create_enterprise(client)
    unknown = await client.post(
        "/api/v1/identifiers",
        json={"prefix": dairy["prefix"], "template": "food.nothing", "attributes": {}},
        headers=bearer(dairy),
    )
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "TemplateNotFound"
    neither = await client.post(
        "/api/v1/identifiers",
        json={"template": "food.batch", "attributes": BATCH},
        headers=bearer(dairy),
    )
    assert neither.status_code == 400
    assert "prefix" in neither.json()["detail"]
    anonymous = await client.post(
        "/api/v1/identifiers",
        json={"prefix": dairy["prefix"], "template": "food.batch", "attributes": BATCH},
    )
    assert anonymous.status_code == 401
    other = await create_enterprise(client, "Other Dairy")
    foreign = await client.post(
        "/api/v1/identifiers",
        json={"prefix": dairy["prefix"], "template": "food.batch", "attributes": BATCH},
        headers=bearer(other),
    )
    assert foreign.status_code == 403


async def test_retrying_a_mint_with_its_key_returns_the_first_identifier(
    client: httpx.AsyncClient,
) -> None:
    dairy = await create_enterprise(client)
    first = await register(client, dairy, idempotencyKey="mes-order-42")
    retry = await register(client, dairy, idempotencyKey="mes-order-42", expect=200)
    assert retry["handle"] == first["handle"]
    assert retry["attributes"] == first["attributes"]
    by_header = await client.post(
        "/api/v1/identifiers",
        json={"prefix": dairy["prefix"], "template": "food.batch", "attributes": BATCH},
        headers={**bearer(dairy), "Idempotency-Key": "mes-order-42"},
    )
    assert by_header.status_code == 200
    assert by_header.json()["handle"] == first["handle"]
    racing = await asyncio.gather(
        *(
            client.post(
                "/api/v1/identifiers",
                json={
                    "prefix": dairy["prefix"],
                    "template": "food.batch",
                    "attributes": BATCH,
                    "idempotencyKey": "mes-order-43",
                },
                headers=bearer(dairy),
            )
            for _ in range(4)
        )
    )
    assert sorted(r.status_code for r in racing) == [200, 200, 200, 201]
    assert len({r.json()["handle"] for r in racing}) == 1
    found = await client.get(
        "/api/v1/search",
        params={"template": "food.batch", "attr.batchNumber": BATCH["batchNumber"]},
    )
    assert len(found.json()["items"]) == 2  # mes-order-42 and mes-order-43, nothing more


async def test_patch_validates_the_changed_record_again(client: httpx.AsyncClient) -> None:
    dairy = await create_enterprise(client)
    handle = (await register(client, dairy))["handle"]
    url = f"/api/v1/identifiers/{handle}"

    refused = await client.patch(
        url,
        json={"attributes": {"quantity": "lots", "expiryDate": "2026-02-01", "batchNumber": None}},
        headers=bearer(dairy),
    )
    assert set(fields(refused)) == {"quantity", "productionDate", "batchNumber"}
    unchanged = await client.get(url)
    assert unchanged.json()["attributes"]["quantity"]["value"] == 12000

    changed = await client.patch(
        url,
        json={"attributes": {"quantity": 11500, "origin": None}, "url": "https://x.example/b"},
        headers=bearer(dairy),
    )
    assert changed.status_code == 200, changed.text
    attributes = changed.json()["attributes"]
    assert attributes["quantity"]["value"] == 11500  # a number, as sent
    assert "origin" not in attributes
    assert attributes["batchNumber"]["value"] == BATCH["batchNumber"]
    assert changed.json()["url"] == "https://x.example/b"
    resolved = await values_of(client, handle)
    assert resolved[2004]["data"]["value"] == "11500"
    assert 2008 not in resolved
    assert 100 in resolved  # HS_ADMIN kept

    other = await create_enterprise(client, "Other Dairy")
    foreign = await client.patch(url, json={"attributes": {"quantity": 1}}, headers=bearer(other))
    assert foreign.status_code == 403
    anonymous = await client.patch(url, json={"attributes": {"quantity": 1}})
    assert anonymous.status_code == 401


async def test_get_shows_attributes_by_name_with_labels(client: httpx.AsyncClient) -> None:
    dairy = await create_enterprise(client)
    handle = (await register(client, dairy, visibility={"origin": "restricted"}))["handle"]

    anyone = (await client.get(f"/api/v1/identifiers/{handle}")).json()
    assert anyone["template"] == {
        "id": "food.batch",
        "version": 1,
        "title": {"zh": "食品批次", "en": "Food batch"},
    }
    batch = anyone["attributes"]["batchNumber"]
    assert batch == {
        "value": BATCH["batchNumber"],
        "label_zh": "批号",
        "label_en": "Batch number",
        "type": "string",
        "visibility": "public",
        "index": 2001,
    }
    assert "inspectionReport" not in anyone["attributes"]
    assert "origin" not in anyone["attributes"]  # narrowed by the request

    for caller in (bearer(dairy), OPERATOR):
        seen = (await client.get(f"/api/v1/identifiers/{handle}", headers=caller)).json()
        assert seen["attributes"]["origin"]["visibility"] == "restricted"
        assert seen["attributes"]["inspectionReport"]["value"] == BATCH["inspectionReport"]

    missing = await client.get(f"/api/v1/identifiers/{dairy['prefix']}/NOPE")
    assert missing.status_code == 404


async def test_unique_values_hold_once_and_are_freed_by_change_and_delete(
    client: httpx.AsyncClient,
) -> None:
    pharma = await create_enterprise(client, "North China Pharma")
    first = (await register(client, pharma, template="drug.batch", attributes=DRUG))["handle"]

    clash = await client.post(
        "/api/v1/identifiers",
        json={"prefix": pharma["prefix"], "template": "drug.batch", "attributes": DRUG},
        headers=bearer(pharma),
    )
    assert first in fields(clash)["traceCode"]  # the owner is told which identifier holds it
    other = await create_enterprise(client, "Other Pharma")
    hidden = await client.post(
        "/api/v1/identifiers",
        json={"prefix": other["prefix"], "template": "drug.batch", "attributes": DRUG},
        headers=bearer(other),
    )
    message = fields(hidden)["traceCode"]
    assert "already registered" in message
    assert first not in message

    moved = await client.patch(
        f"/api/v1/identifiers/{first}",
        json={"attributes": {"traceCode": OTHER_CODE}},
        headers=bearer(pharma),
    )
    assert moved.status_code == 200, moved.text
    second = (await register(client, other, template="drug.batch", attributes=DRUG))["handle"]
    deleted = await client.delete(f"/api/handles/{second}", headers=bearer(other))
    assert deleted.status_code == 200
    third = await register(client, pharma, template="drug.batch", attributes=DRUG)
    assert third["attributes"]["traceCode"]["value"] == DRUG["traceCode"]


async def test_concurrent_registrations_of_one_unique_value_exactly_one_wins(
    client: httpx.AsyncClient,
) -> None:
    pharma = await create_enterprise(client, "North China Pharma")
    other = await create_enterprise(client, "Other Pharma")

    async def attempt(enterprise: dict[str, Any]) -> httpx.Response:
        return await client.post(
            "/api/v1/identifiers",
            json={"prefix": enterprise["prefix"], "template": "drug.batch", "attributes": DRUG},
            headers=bearer(enterprise),
        )

    answers = await asyncio.gather(*(attempt(e) for e in (pharma, other, pharma, other)))
    assert sorted(a.status_code for a in answers) == [201, 422, 422, 422], [a.text for a in answers]
    for answer in answers:
        if answer.status_code == 422:
            assert "traceCode" in fields(answer)
    winner = next(a.json()["handle"] for a in answers if a.status_code == 201)
    found = await client.get(
        "/api/v1/search",
        params={"template": "drug.batch", "attr.traceCode": DRUG["traceCode"]},
        headers=OPERATOR,
    )
    assert [item["handle"] for item in found.json()["items"]] == [winner]


async def test_proxy_page_shows_labelled_public_attributes(client: httpx.AsyncClient) -> None:
    dairy = await create_enterprise(client)
    handle = (await register(client, dairy))["handle"]
    chinese = await client.get(f"/{handle}", headers={"Accept-Language": "zh-CN"})
    assert chinese.status_code == 200
    assert "食品批次" in chinese.text
    assert "批号" in chinese.text
    english = (await client.get(f"/{handle}?lang=en")).text
    assert "Batch number" in english
    for text in (chinese.text, english):
        assert BATCH["batchNumber"] in text
        assert BATCH["inspectionReport"] not in text


def qr_bytes(url: str, kind: str, scale: int) -> bytes:
    out = io.BytesIO()
    segno.make(url, error="m", micro=False).save(out, kind=kind, scale=scale, border=4)
    return out.getvalue()


async def test_qr_codes_encode_the_proxy_url(client: httpx.AsyncClient) -> None:
    dairy = await create_enterprise(client)
    handle = (await register(client, dairy))["handle"]
    expected = f"http://idnode.test/{handle}"

    svg = await client.get(f"/api/v1/identifiers/{handle}/qr.svg")
    assert svg.status_code == 200
    assert svg.headers["content-type"] == "image/svg+xml"
    assert svg.content == qr_bytes(expected, "svg", 4)
    assert svg.content != qr_bytes(f"http://idnode.test/{dairy['prefix']}/other", "svg", 4)

    png = await client.get(f"/api/v1/identifiers/{handle}/qr.png", params={"scale": 3})
    assert png.headers["content-type"] == "image/png"
    assert png.content == qr_bytes(expected, "png", 3)

    missing = await client.get(f"/api/v1/identifiers/{dairy['prefix']}/NOPE/qr.svg")
    assert missing.status_code == 404


async def test_qr_codes_use_the_public_url(settings: Settings) -> None:
    public = settings.model_copy(update={"public_url": "https://id.example.cn/"})
    async with node_client(public, base_url="http://internal") as client:
        dairy = await create_enterprise(client)
        handle = f"{dairy['prefix']}/MILK 250/B1"
        await register(client, dairy, handle=handle)
        svg = await client.get(f"/api/v1/identifiers/{handle}/qr.svg")
    expected = f"https://id.example.cn/{dairy['prefix']}/MILK%20250/B1"
    assert svg.content == qr_bytes(expected, "svg", 4)


async def test_long_values_up_to_the_limit_are_stored_and_searchable(
    client: httpx.AsyncClient,
) -> None:
    dairy = await create_enterprise(client)
    product = FOOD_PRODUCT["example"]
    longest = "🥛" * 400  # 400 characters, 1,600 bytes of UTF-8: the largest index entry
    created = await register(
        client, dairy, template="food.product", attributes={**product, "ingredients": longest}
    )
    found = await client.get(
        "/api/v1/search", params={"template": "food.product", "attr.ingredients": longest}
    )
    assert [i["handle"] for i in found.json()["items"]] == [created["handle"]]
    too_long = await client.post(
        "/api/v1/identifiers",
        json={
            "prefix": dairy["prefix"],
            "template": "food.product",
            "attributes": {**product, "ingredients": longest + "x"},
        },
        headers=bearer(dairy),
    )
    assert "at most 400 characters" in fields(too_long)["ingredients"]


async def test_typed_attributes_come_back_as_json_types_on_every_read(
    client: httpx.AsyncClient,
) -> None:
    """Numbers and true/false come back as JSON numbers and booleans (dates as the text
    sent); the Handle record keeps text, as Handle clients expect."""
    plant = await create_enterprise(client)
    sent = {
        **DEVICE["example"],
        "hardwareId": "TYPED-1",
        "hardwareIdType": "serial",
        "batteryLevel": 77,
        "online": True,
        "firstSeen": "2026-03-01T08:30:00Z",
    }
    created = await register(client, plant, template="device", attributes=sent)
    handle = created["handle"]
    batch = await register(client, plant, attributes={**BATCH, "quantity": 11500.5})

    def typed(view: dict[str, Any]) -> dict[str, Any]:
        return {name: shown["value"] for name, shown in view["attributes"].items()}

    url = f"/api/v1/identifiers/{handle}"
    found = {"template": "device", "attr.hardwareId": "TYPED-1"}
    reads = [
        created,
        (await client.get(url)).json(),
        (await client.get(url, params={"at": "2099-01-01T00:00:00Z"})).json(),
        (await client.get("/api/v1/search", params=found)).json()["items"][0],
    ]
    for view in reads:
        assert typed(view) == {**sent, "firstSeen": "2026-03-01T08:30:00Z"}
        assert isinstance(typed(view)["batteryLevel"], int)
    assert typed(batch)["quantity"] == 11500.5
    record = await values_of(client, handle)
    assert record[2009]["data"]["value"] == "77"
    assert record[2008]["data"]["value"] == "true"
