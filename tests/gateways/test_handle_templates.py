"""A record registered against a template keeps to it through every door: the Handle protocol
(create, add, modify, remove) and ``PUT``/``POST``/``DELETE /api/handles`` are checked by the
same rules as ``/api/v1/identifiers``; records without a template stay free-form."""

from __future__ import annotations

from typing import Any

import httpx

from app.registry.templates import DRUG_BATCH, FOOD_BATCH
from resolver.handle_protocol.message import RC_INVALID_VALUE, RC_SUCCESS
from resolver.values import HandleValue
from tests.conftest import bearer, create_enterprise, url_value
from tests.gateways.handle_node import NativeNode

BATCH = FOOD_BATCH["example"]
DRUG = DRUG_BATCH["example"]
QUANTITY, BATCH_NUMBER, INSPECTION, TRACE_CODE = 2004, 2001, 2007, 2012
OTHER_CODE, THIRD_CODE = "81234567890000000001", "81234567890000000002"


async def batch(node: NativeNode, enterprise: dict[str, Any], suffix: str) -> str:
    handle = f"{enterprise['prefix']}/{suffix}"
    answer = await node.http.post(
        "/api/v1/identifiers",
        json={"handle": handle, "template": "food.batch", "attributes": BATCH},
        headers=bearer(enterprise),
    )
    assert answer.status_code == 201, answer.text
    return handle


async def stored(node: NativeNode, handle: str, enterprise: dict[str, Any]) -> dict[int, Any]:
    answer = await node.http.get(f"/api/handles/{handle}", headers=bearer(enterprise))
    assert answer.status_code == 200, answer.text
    return {v["index"]: v["data"]["value"] for v in answer.json()["values"]}


def attribute(index: int, name: str, text: str, permissions: str = "1110") -> HandleValue:
    return HandleValue(index, name, "string", text, permissions=permissions)


def violation(answer: httpx.Response) -> dict[str, str]:
    """The identifiers API's body: error, detail, and every failing field."""
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["error"] == "TemplateViolation"
    assert body["detail"]
    return {f["name"]: f["message"] for f in body["fields"]}


async def test_native_writes_keep_a_templated_record_to_its_template(node: NativeNode) -> None:
    dairy = await create_enterprise(node.http)
    handle = await batch(node, dairy, "BATCH-N1")
    before = await stored(node, handle, dairy)
    async with node.connection() as client:
        await client.login(f"300:{dairy['prefix']}/ADMIN", dairy["secret"])

        typo = await client.modify(handle, [attribute(QUANTITY, "quantity", "abc")])
        assert typo.code == RC_INVALID_VALUE
        assert "quantity" in typo.error
        assert "must be a number" in typo.error

        required = await client.remove(handle, [BATCH_NUMBER])
        assert required.code == RC_INVALID_VALUE
        assert "batchNumber" in required.error
        assert "required" in required.error

        public = await client.modify(
            handle, [attribute(INSPECTION, "inspectionReport", "open", permissions="1110")]
        )
        assert public.code == RC_INVALID_VALUE
        assert "inspectionReport" in public.error

        squatter = await client.modify(handle, [attribute(2008, "NOTE", "x")])
        assert squatter.code == RC_INVALID_VALUE, squatter.error  # 2008 is the item origin's
        assert "origin" in squatter.error

        fresh = await client.create(
            f"{dairy['prefix']}/BATCH-N2",
            [attribute(1001, "TEMPLATE", "food.batch@1"), attribute(QUANTITY, "quantity", "5")],
        )
        assert fresh.code == RC_INVALID_VALUE
        assert "product" in fresh.error
        assert "batchNumber" in fresh.error

        dropped = await client.remove(handle, [1001])  # would make the attributes free-form
        assert dropped.code == RC_INVALID_VALUE
        assert "TEMPLATE" in dropped.error

        fine = await client.modify(handle, [attribute(QUANTITY, "quantity", "13.50")])
        assert fine.code == RC_SUCCESS, fine.error
        assert (await client.add(handle, [attribute(3, "EMAIL", "qa@example.com")])).code == 1
    after = await stored(node, handle, dairy)
    assert after[QUANTITY] == "13.5"  # the template's canonical text, as the identifiers API
    assert after[BATCH_NUMBER] == before[BATCH_NUMBER]
    assert after[INSPECTION] == before[INSPECTION]
    assert (await node.http.get(f"/api/handles/{dairy['prefix']}/BATCH-N2")).status_code == 404


async def test_handle_rest_writes_keep_a_templated_record_to_its_template(
    node: NativeNode,
) -> None:
    dairy = await create_enterprise(node.http)
    handle = await batch(node, dairy, "BATCH-H1")
    before = await stored(node, handle, dairy)
    owner = bearer(dairy)
    http = node.http

    typo = await http.put(
        f"/api/handles/{handle}?index={QUANTITY}",
        json=[{"index": QUANTITY, "type": "quantity", "data": "abc"}],
        headers=owner,
    )
    assert "must be a number" in violation(typo)["quantity"]
    assert typo.json()["responseCode"] == RC_INVALID_VALUE
    assert typo.json()["handle"] == handle

    removed = await http.delete(f"/api/handles/{handle}?index={BATCH_NUMBER}", headers=owner)
    assert "required" in violation(removed)["batchNumber"]

    whole = await http.put(
        f"/api/handles/{handle}",
        json=[{"index": 1001, "type": "TEMPLATE", "data": "food.batch@1"}],
        headers=owner,
    )
    assert {"product", "batchNumber"} <= set(violation(whole))

    minted = await http.post(
        f"/api/handles/{dairy['prefix']}",
        json=[{"index": 1001, "type": "TEMPLATE", "data": "food.batch@1"}],
        headers=owner,
    )
    assert "batchNumber" in violation(minted)

    assert await stored(node, handle, dairy) == before
    fine = await http.put(
        f"/api/handles/{handle}?index={QUANTITY}",
        json=[{"index": QUANTITY, "type": "quantity", "data": "14.0"}],
        headers=owner,
    )
    assert fine.status_code == 200, fine.text
    assert (await stored(node, handle, dairy))[QUANTITY] == "14"


async def test_unique_values_are_claimed_and_freed_through_the_native_door(
    node: NativeNode,
) -> None:
    dairy = await create_enterprise(node.http)
    first, second = f"{dairy['prefix']}/DRUG-1", f"{dairy['prefix']}/DRUG-2"
    for handle, code in ((first, DRUG["traceCode"]), (second, OTHER_CODE)):
        answer = await node.http.post(
            "/api/v1/identifiers",
            json={
                "handle": handle,
                "template": "drug.batch",
                "attributes": {**DRUG, "traceCode": code},
            },
            headers=bearer(dairy),
        )
        assert answer.status_code == 201, answer.text
    async with node.connection() as client:
        await client.login(f"300:{dairy['prefix']}/ADMIN", dairy["secret"])
        taken = await client.modify(second, [attribute(TRACE_CODE, "traceCode", DRUG["traceCode"])])
        assert taken.code == RC_INVALID_VALUE
        assert "traceCode" in taken.error
        assert "already registered" in taken.error
        moved = await client.modify(first, [attribute(TRACE_CODE, "traceCode", THIRD_CODE)])
        assert moved.code == RC_SUCCESS, moved.error
        freed = await client.modify(second, [attribute(TRACE_CODE, "traceCode", DRUG["traceCode"])])
        assert freed.code == RC_SUCCESS, freed.error
    again = await node.http.post(
        "/api/v1/identifiers",
        json={
            "prefix": dairy["prefix"],
            "template": "drug.batch",
            "attributes": {**DRUG, "traceCode": THIRD_CODE},
        },
        headers=bearer(dairy),
    )
    assert "already registered" in violation(again)["traceCode"]


async def test_records_without_a_template_stay_free_form(node: NativeNode) -> None:
    dairy = await create_enterprise(node.http)
    handle = f"{dairy['prefix']}/FREE-1"
    put = await node.http.put(
        f"/api/handles/{handle}",
        json=[
            url_value("https://example.com/f"),
            {"index": 2004, "type": "quantity", "data": "abc"},
        ],
        headers=bearer(dairy),
    )
    assert put.status_code == 201, put.text
    async with node.connection() as client:
        await client.login(f"300:{dairy['prefix']}/ADMIN", dairy["secret"])
        assert (await client.modify(handle, [attribute(2004, "quantity", "xyz")])).code == 1
        assert (await client.remove(handle, [2004])).code == 1
        unknown = [attribute(1001, "TEMPLATE", "no.such@1"), attribute(2001, "x", "y")]
        assert (await client.create(f"{dairy['prefix']}/FREE-2", unknown)).code == 1
