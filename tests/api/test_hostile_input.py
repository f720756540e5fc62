"""Hostile text, numbers and times over HTTP are refused with a 4xx that names the field,
never a 500: NUL and control characters (PostgreSQL cannot store U+0000), numbers past their
columns, times that an offset pushes past year 9999 or before year 1.

Runs on both backends (the ``client`` fixture is parametrised over SQLite and PostgreSQL).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.registry.templates import FOOD_BATCH
from tests.conftest import OPERATOR, bearer, create_enterprise, url_value

NUL = "bad\x00name"
BELL = "bad\x07name"
PAST_9999 = "9999-12-31T23:59:59-01:00"
BEFORE_1 = "0001-01-01T00:00:00+01:00"


def assert_refused(answer: httpx.Response, field: str) -> None:
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text)
    body = answer.json()
    message = body.get("detail") or body.get("message")
    assert field in message, body
    assert "U+00" in message, body


async def _identifier(client: httpx.AsyncClient, enterprise: dict[str, Any]) -> str:
    handle = f"{enterprise['prefix']}/LOT-1"
    answer = await client.post(
        "/api/v1/identifiers",
        json={"handle": handle, "template": "food.batch", "attributes": FOOD_BATCH["example"]},
        headers=bearer(enterprise),
    )
    assert answer.status_code == 201, answer.text
    return handle


@pytest.mark.parametrize("bad", [NUL, BELL], ids=["nul", "bell"])
async def test_control_characters_in_typed_bodies_are_refused_naming_the_field(
    client: httpx.AsyncClient, bad: str
) -> None:
    enterprise = await create_enterprise(client)
    prefix = enterprise["prefix"]
    owner = bearer(enterprise)
    handle = f"{prefix}/LOT-2"
    register = {"handle": handle, "template": "food.batch", "attributes": FOOD_BATCH["example"]}
    cases: list[tuple[str, str, dict[str, Any], dict[str, str], str]] = [
        ("POST", "/api/v1/enterprises", {"name": bad}, OPERATOR, "name"),
        ("POST", "/api/v1/reader-tokens", {"name": bad}, owner, "name"),
        ("POST", f"/api/v1/enterprises/{prefix}/provisioning-keys", {"name": bad}, owner, "name"),
        ("POST", "/api/v1/identifiers", {**register, "url": f"https://x.example/{bad}"}, owner,
         "url"),
        ("POST", "/api/v1/identifiers", {**register, "idempotencyKey": bad}, owner,
         "idempotencyKey"),
        ("POST", "/api/v1/identifiers",
         {**register, "attributes": {**FOOD_BATCH["example"], "origin": bad}}, owner,
         "attributes.origin"),
        ("POST", "/api/v1/identifiers", {**register, "attributes": {bad: "x"}}, owner,
         "attributes"),
        ("POST", "/api/v1/grants", {"grantee": bad, "scope": prefix}, owner, "grantee"),
    ]  # fmt: skip
    for method, path, body, headers, field in cases:
        answer = await client.request(method, path, json=body, headers=headers)
        assert_refused(answer, field)
    assert (await client.get(f"/api/v1/identifiers/{handle}")).status_code == 404


async def test_control_characters_in_handle_values_and_templates_are_refused(
    client: httpx.AsyncClient,
) -> None:
    enterprise = await create_enterprise(client)
    owner = bearer(enterprise)
    handle = f"{enterprise['prefix']}/LOT-3"
    value = {"index": 2, "type": "NOTE", "data": NUL}
    answer = await client.put(
        f"/api/handles/{handle}", json={"values": [url_value("https://x.example/"), value]},
        headers=owner,
    )  # fmt: skip
    assert_refused(answer, "data")
    assert answer.json()["responseCode"] != 1
    answer = await client.post(
        f"/api/handles/{enterprise['prefix']}", json={"values": [value]}, headers=owner
    )
    assert_refused(answer, "data")
    template = {
        "id": f"{enterprise['prefix']}/widget",
        "industry": "C34",
        "title": {"zh": "零件", "en": NUL},
        "items": [{"index": 2000, "name": "serial", "label_zh": "序列号", "label_en": "Serial",
                   "type": "string", "required": True}],
        "example": {"serial": "W-1"},
    }  # fmt: skip
    assert_refused(await client.post("/api/v1/templates", json=template, headers=owner), "title")
    assert (await client.get(f"/api/handles/{handle}")).status_code == 404


async def test_control_characters_in_batch_items_are_refused_per_item(
    client: httpx.AsyncClient,
) -> None:
    enterprise = await create_enterprise(client)
    good = {"handle": f"{enterprise['prefix']}/B-1", "template": "food.batch",
            "attributes": FOOD_BATCH["example"]}  # fmt: skip
    bad = {**good, "handle": f"{enterprise['prefix']}/B-2", "url": f"https://x.example/{NUL}"}
    answer = await client.post(
        "/api/v1/identifiers:batch", json=[good, bad], headers=bearer(enterprise)
    )
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert results[0]["created"] is True
    assert "url" in results[1]["detail"]
    assert "U+0000" in results[1]["detail"]


async def test_control_characters_in_query_and_path_parameters_are_refused(
    client: httpx.AsyncClient,
) -> None:
    enterprise = await create_enterprise(client)
    owner = bearer(enterprise)
    for path, field in [
        ("/api/v1/search?template=food.batch%00", "template"),
        ("/api/v1/search?template=food.batch&cursor=%00", "cursor"),
        ("/api/v1/search?template=food.batch&attr.origin=%00", "attr.origin"),
        ("/api/v1/templates/food.batch%00", "template_id"),
        ("/api/handles/88.999.1/X?type=URL%00", "type"),
    ]:
        assert_refused(await client.get(path, headers=owner), field)
    assert_refused(await client.delete("/api/v1/grants/g%00", headers=owner), "grant_id")
    assert_refused(await client.delete("/api/v1/reader-tokens/r%00", headers=owner), "reader_id")


async def test_out_of_range_numbers_and_times_are_4xx(client: httpx.AsyncClient) -> None:
    enterprise = await create_enterprise(client)
    handle = await _identifier(client, enterprise)
    answers = [
        await client.get("/api/v1/templates/food.batch?version=2147483648"),
        await client.get("/api/v1/templates/food.batch@2147483648"),
    ]
    for moment in (PAST_9999, BEFORE_1):
        for path in (f"/api/handles/{handle}", f"/api/v1/identifiers/{handle}", f"/{handle}"):
            answers.append(await client.get(path, params={"at": moment}))
    answers.append(
        await client.post(
            "/api/v1/grants",
            json={"grantee": "88.999.2", "scope": handle, "expiresAt": PAST_9999},
            headers=bearer(enterprise),
        )
    )
    answers.append(
        await client.post(
            "/api/v1/identifiers",
            json={
                "handle": f"{enterprise['prefix']}/DEV-1",
                "template": "device",
                "attributes": {
                    "hardwareId": "SN-1",
                    "hardwareIdType": "serial",
                    "firstSeen": PAST_9999,
                },
            },
            headers=bearer(enterprise),
        )
    )
    for answer in answers:
        assert 400 <= answer.status_code < 500, (answer.request.url, answer.text)
    # The times in range still answer: the refusals above are the range's doing.
    assert (
        await client.get(f"/api/handles/{handle}", params={"at": "2999-01-01T00:00:00Z"})
    ).status_code == 200


async def test_identifiers_with_dot_segments_are_refused_on_every_write_path(
    client: httpx.AsyncClient,
) -> None:
    """``88.999.1/../88.999.2/T1`` would be created by enterprise A, and its label's URL would
    open enterprise B's ``88.999.2/T1`` in every normal HTTP client."""
    a = await create_enterprise(client, "A")
    b = await create_enterprise(client, "B")
    sneaky = f"{a['prefix']}/../{b['prefix']}/T1"
    encoded = f"{a['prefix']}/%2e%2E/{b['prefix']}/T1"
    owner = bearer(a)
    register = {"template": "food.batch", "attributes": FOOD_BATCH["example"]}
    answers = {
        "identifiers": await client.post(
            "/api/v1/identifiers", json={**register, "handle": sneaky}, headers=owner
        ),
        "identifiers, encoded": await client.post(
            "/api/v1/identifiers", json={**register, "handle": encoded}, headers=owner
        ),
        # httpx would remove a literal /../ itself: the node must see it, so it is encoded
        "handles PUT": await client.put(
            f"/api/handles/{a['prefix']}/%2E%2E/{b['prefix']}/T1",
            json={"values": [url_value("https://x.example/")]},
            headers=owner,
        ),
        "handles PUT ./": await client.put(
            f"/api/handles/{a['prefix']}/A/%2E/B",
            json={"values": [url_value("https://x.example/")]},
            headers=owner,
        ),
        "handles mint": await client.post(
            f"/api/handles/{a['prefix']}/%2E%2E/",
            json={"values": [url_value("https://x.example/")]},
            headers=owner,
        ),
    }
    for where, answer in answers.items():
        assert answer.status_code == 400, (where, answer.text)
        body = answer.json()
        assert "segment" in (body.get("detail") or body.get("message")), (where, body)
    assert answers["handles PUT"].json()["responseCode"] == 102
    batch = await client.post(
        "/api/v1/identifiers:batch", json=[{**register, "handle": sneaky}], headers=owner
    )
    assert batch.json()["results"][0]["error"] == "InvalidHandle", batch.text
    assert (await client.get(f"/api/handles/{b['prefix']}/T1")).status_code == 404
    assert (await client.get("/api/v1/search?template=food.batch", headers=owner)).json()[
        "items"
    ] == []
