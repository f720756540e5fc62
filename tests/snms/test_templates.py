"""SNMS templates: v5 with incremental edits, v3, the older v1 path real clients call, and
the node's own templates used from SNMS."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from app.registry.templates import FOOD_BATCH
from tests.conftest import bearer, create_enterprise
from tests.snms.test_identifiers import milk, milk_template, ok

V5 = "/snms/api/v5/template"


def value(index: Any, vtype: str, text: str) -> dict[str, Any]:
    return {"index": index, "type": vtype, "data": {"format": "string", "value": text}}


async def test_v5_create_show_and_incremental_edit(
    client: httpx.AsyncClient, dairy: dict[str, Any]
) -> None:
    prefix, headers = dairy["prefix"], dairy["snms"]
    assert await ok(await client.post(V5, json=milk_template(prefix), headers=headers))
    query = {"prefix": prefix, "version": "1.0.0"}
    shown = await ok(await client.get(V5, params=query, headers=headers))
    assert shown["industrySubclass"] == "1441"
    assert shown["description"] == "液态乳批次"
    assert [(i["idIndex"], i["idType"], i["name"], i["state"]) for i in shown["items"]] == [
        (2000, "productName", "产品名称", 1),
        (2001, "batchNo", "批次号", 1),
        (2002, "origin", "产地", 1),
    ]
    assert shown["items"][1]["metadata"] == {"type": "string", "minLength": 1, "maxLength": 32}
    twice = (await client.post(V5, json=milk_template(prefix), headers=headers)).json()
    assert twice["status"] == -2
    assert twice["data"] is None
    # Incremental: one item disabled, one widened, one added without idIndex.
    edit = {
        "prefix": prefix,
        "version": "1.0.0",
        "items": [
            {"idIndex": "2002", "idType": "origin", "state": 0},
            {"idIndex": 2001, "idType": "batchNo", "state": 1,
             "metadata": {"type": "String", "minLength": 1, "maxLength": 40}},
            {"name": "灌装线", "idType": "fillingLine", "required": False,
             "metadata": {"type": "string", "minLength": 1, "maxLength": 8}},
        ],
    }  # fmt: skip
    assert await ok(await client.put(V5, json=edit, headers=headers))
    shown = await ok(await client.get(V5, params=query, headers=headers))
    assert [(i["idIndex"], i["idType"], i["state"]) for i in shown["items"]] == [
        (2000, "productName", 1),
        (2001, "batchNo", 1),
        (2002, "origin", 0),
        (2003, "fillingLine", 1),
    ]
    record = milk(f"{prefix}/EDITED-1", batch="B" * 40)
    record["value"].append(value(2003, "fillingLine", "L3"))
    assert await ok(await client.post("/identityv2/data", json=record, headers=headers))
    record = milk(f"{prefix}/EDITED-2")
    record["value"].append(value(2002, "origin", "内蒙古"))
    disabled = (await client.post("/identityv2/data", json=record, headers=headers)).json()
    assert disabled == {"status": -2, "message": "非法操作，索引2002在模板中不存在", "data": None}
    clash = {"prefix": prefix, "version": "1.0.0", "items": [{"idIndex": 2000, "idType": "x"}]}
    assert (await client.put(V5, json=clash, headers=headers)).json()["status"] == -2


async def test_an_snms_template_validates_the_nodes_own_api(
    client: httpx.AsyncClient, dairy: dict[str, Any]
) -> None:
    prefix = dairy["prefix"]
    await ok(await client.post(V5, json=milk_template(prefix), headers=dairy["snms"]))
    listed = (await client.get("/api/v1/templates", headers=bearer(dairy))).json()
    template_id = next(t["id"] for t in listed if t["title"]["zh"] == "1.0.0")
    body = {
        "handle": f"{prefix}/NATIVE-1",
        "template": template_id,
        "attributes": {"productName": "纯牛奶", "batchNo": "B" * 33},
    }
    refused = await client.post("/api/v1/identifiers", json=body, headers=bearer(dairy))
    assert refused.status_code == 422
    assert [f["name"] for f in refused.json()["fields"]] == ["batchNo"]
    body["attributes"]["batchNo"] = "B-1"
    created = await client.post("/api/v1/identifiers", json=body, headers=bearer(dairy))
    assert created.status_code == 201
    shown = await client.get(
        "/identityv2/data/detail", params={"handle": body["handle"]}, headers=dairy["snms"]
    )
    assert (await ok(shown))["templateVersion"] == "1.0.0"


async def test_the_older_v1_path_as_a_real_client_uses_it(
    client: httpx.AsyncClient, dairy: dict[str, Any]
) -> None:
    """Ask for OneCodeDefault; absent (status not 1, data null), so create it with items
    without idIndex and "String" metadata; read idIndex back; register in batches whose
    values carry no auth."""
    prefix, headers = dairy["prefix"], dairy["snms"]
    path, query = "/snms/api/template/v1", {"prefix": prefix, "version": "OneCodeDefault"}
    absent = (await client.get(path, params=query, headers=headers)).json()
    assert absent["status"] != 1
    assert absent["data"] is None
    names = [("产品名称", "productName"), ("批次", "batch"), ("生产日期", "productionDate")]
    create = {
        "prefix": prefix,
        "version": "OneCodeDefault",
        "items": [
            {"name": n, "idType": t, "metadata": {"type": "String", "minLength": 0,
                                                   "maxLength": 10000}}
            for n, t in names
        ],
    }  # fmt: skip
    assert await ok(await client.post(path, json=create, headers=headers))
    shown = await ok(await client.get(path, params=query, headers=headers))
    fields = {i["name"]: f"{i['idIndex']}---{i['idType']}" for i in shown["items"]}
    assert fields == {
        "产品名称": "2000---productName",
        "批次": "2001---batch",
        "生产日期": "2002---productionDate",
    }
    records = [
        {
            "handle": f"{prefix}/ONE-{n}",
            "templateVersion": "OneCodeDefault",
            "value": [value(2000, "productName", "奶粉"), value(2001, "batch", f"B{n}")],
        }
        for n in range(3)
    ]
    answers = await ok(
        await client.post("/identityv2/data/batchCreate", json=records, headers=headers)
    )
    assert [a["code"] for a in answers] == [1, 1, 1]
    # A record that names no template gets OneCodeDefault.
    bare = {"handle": f"{prefix}/ONE-BARE", "value": [value("2000", "productName", "奶粉")]}
    assert await ok(await client.post("/identityv2/data", json=bare, headers=headers))


async def test_v3_requires_the_industry_fields(
    client: httpx.AsyncClient, dairy: dict[str, Any]
) -> None:
    body = milk_template(dairy["prefix"], version="V3")
    del body["industryCategory"]
    missing = (await client.post("/snms/api/v3/template", json=body, headers=dairy["snms"])).json()
    assert missing["status"] == -2
    assert "industryCategory" in missing["message"]
    body["industryCategory"] = "C"
    for item in body["items"]:
        del item["idIndex"]
    assert await ok(await client.post("/snms/api/v3/template", json=body, headers=dairy["snms"]))


async def test_chinese_versions_and_delete(
    client: httpx.AsyncClient, dairy: dict[str, Any]
) -> None:
    """A bulk-sync integration names its templates "单品模板" + a number."""
    prefix, headers = dairy["prefix"], dairy["snms"]
    version = "单品模板12"
    await ok(await client.post(V5, json=milk_template(prefix, version), headers=headers))
    record = milk(f"{prefix}/UNIT-1", version=version)
    assert await ok(
        await client.post("/identityv2/data/batchCreate", json=[record], headers=headers)
    )
    detail = await ok(
        await client.get("/identityv2/data/detail", params={"handle": record["handle"]})
    )
    assert detail["templateVersion"] == version
    gone = {"prefix": prefix, "version": version}
    assert await ok(await client.request("DELETE", V5, json=gone, headers=headers))
    shown = (await client.get(V5, params=gone, headers=headers)).json()
    assert shown["status"] == -2
    assert shown["data"] is None
    # The identifier keeps its values and template.
    resolved = (await client.get(f"/api/handles/{quote(record['handle'])}")).json()
    assert resolved["responseCode"] == 1


async def test_only_the_owner_changes_its_templates(
    client: httpx.AsyncClient, dairy: dict[str, Any]
) -> None:
    other = await create_enterprise(client, "Mengniu")
    body = milk_template(dairy["prefix"])
    foreign = (await client.post(V5, json=body, headers=bearer(other))).json()
    assert foreign["status"] == -3


async def test_bundled_templates_are_usable_from_snms(
    client: httpx.AsyncClient, dairy: dict[str, Any]
) -> None:
    prefix, headers = dairy["prefix"], dairy["snms"]
    query = {"prefix": prefix, "version": "food.batch"}
    shown = await ok(await client.get(V5, params=query, headers=headers))
    example = FOOD_BATCH["example"]
    values = [
        value(i["idIndex"], i["idType"], str(example[i["idType"]]))
        for i in shown["items"]
        if i["idType"] in example
    ]
    record = {"handle": f"{prefix}/FOOD-1", "templateVersion": "food.batch", "value": values}
    assert await ok(await client.post("/identityv2/data", json=record, headers=headers))
    node = (await client.get(f"/api/v1/identifiers/{quote(record['handle'])}")).json()
    assert node["template"]["id"] == "food.batch"
    assert node["attributes"]["quantity"]["value"] == 12000  # typed: a number


async def test_an_update_may_set_items_added_since_registration(
    client: httpx.AsyncClient, dairy: dict[str, Any]
) -> None:
    prefix, headers = dairy["prefix"], dairy["snms"]
    await ok(await client.post(V5, json=milk_template(prefix), headers=headers))
    handle = f"{prefix}/OLD-1"
    await ok(await client.post("/identityv2/data", json=milk(handle), headers=headers))
    added = {"idType": "fillingLine", "name": "灌装线", "metadata": {"type": "string"}}
    edit = {"prefix": prefix, "version": "1.0.0", "items": [added]}
    await ok(await client.put(V5, json=edit, headers=headers))
    record = milk(handle)
    record["value"].append(value(2003, "fillingLine", "L3"))
    await ok(await client.put("/identityv2/data", json=record, headers=headers))
    detail = await ok(
        await client.get("/identityv2/data/detail", params={"handle": handle}, headers=headers)
    )
    assert {v["index"]: v["data"]["value"] for v in detail["value"]}[2003] == "L3"
    # Another template is not a later version of this one.
    await ok(await client.post(V5, json=milk_template(prefix, "2.0.0"), headers=headers))
    moved = await client.put(
        "/identityv2/data", json=milk(handle, version="2.0.0"), headers=headers
    )
    assert moved.json()["status"] == -2
