"""SNMS identifier calls, replayed with bodies shaped as the SNMS docs' examples and as real
integrations send them."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from app.settings import Settings
from tests.conftest import OPERATOR, create_enterprise
from tests.gateways.handle_node import native_node
from tests.snms.conftest import PASSWORD, login, snms_user

DETAIL = "/identityv2/data/detail"


def milk_template(prefix: str, version: str = "1.0.0") -> dict[str, Any]:
    """The v5 template create body as the docs' example writes it (idIndex as text)."""
    return {
        "prefix": prefix,
        "version": version,
        "industryCategory": "C",
        "industrySpecific": "14",
        "industryTrade": "144",
        "industrySubclass": "1441",
        "type": 1,
        "description": "液态乳批次",
        "items": [
            {"name": "产品名称", "idType": "productName", "idIndex": "2000", "required": True,
             "metadata": {"type": "string", "minLength": 1, "maxLength": 64}},
            {"name": "批次号", "idType": "batchNo", "idIndex": "2001", "required": True,
             "metadata": {"type": "string", "minLength": 1, "maxLength": 32}},
            {"name": "产地", "idType": "origin", "idIndex": "2002", "required": False,
             "metadata": {"type": "string", "minLength": 0, "maxLength": 64}},
        ],
    }  # fmt: skip


def milk(handle: str, batch: str = "B20260301-01", version: str = "1.0.0") -> dict[str, Any]:
    """The create body of the docs' example, with ``auth: ""`` as they send it."""
    return {
        "handle": handle,
        "templateVersion": version,
        "value": [
            {"index": 2000, "type": "productName", "auth": "",
             "data": {"format": "string", "value": "纯牛奶 250ml"}},
            {"index": 2001, "type": "batchNo", "auth": "",
             "data": {"format": "string", "value": batch}},
        ],
    }  # fmt: skip


async def ok(answer: httpx.Response) -> Any:
    """The data of a successful SNMS answer."""
    body = answer.json()
    assert answer.status_code == 200
    assert (body["status"], body["message"]) == (1, "success"), body
    return body["data"]


async def with_template(client: httpx.AsyncClient, dairy: dict[str, Any]) -> str:
    await ok(
        await client.post(
            "/snms/api/v5/template", json=milk_template(dairy["prefix"]), headers=dairy["snms"]
        )
    )
    return str(dairy["prefix"])


async def detail_values(client: httpx.AsyncClient, handle: str, headers: Any) -> dict[int, str]:
    data = await ok(await client.get(DETAIL, params={"handle": handle}, headers=headers))
    return {v["index"]: v["data"]["value"] for v in data["value"]}


async def test_a_repeated_create_answers_exists_and_changes_nothing(
    client: httpx.AsyncClient, dairy: dict[str, Any]
) -> None:
    prefix = await with_template(client, dairy)
    handle = f"{prefix}/MILK-20260301-0001"
    assert await ok(await client.post("/identityv2/data", json=milk(handle), headers=dairy["snms"]))
    for body in (milk(handle), milk(handle, batch="B-OTHER")):
        again = await client.post("/identityv2/data", json=body, headers=dairy["snms"])
        assert again.status_code == 200
        assert again.json() == {"status": -2, "message": "标识已存在", "data": None}
    values = await detail_values(client, handle, dairy["snms"])
    assert values == {1001: "1.0.0", 2000: "纯牛奶 250ml", 2001: "B20260301-01"}


async def test_a_create_refused_by_the_template_writes_nothing(
    client: httpx.AsyncClient, dairy: dict[str, Any]
) -> None:
    prefix = await with_template(client, dairy)
    handle = f"{prefix}/MILK-LONG"
    body = milk(handle, batch="B" * 33)  # the template allows 32
    refused = (await client.post("/identityv2/data", json=body, headers=dairy["snms"])).json()
    assert refused["status"] == -2
    assert "batchNo" in refused["message"]
    unknown = milk(handle)
    unknown["value"].append(
        {"index": 1000, "type": "x", "auth": "", "data": {"format": "string", "value": "1"}}
    )
    answer = (await client.post("/identityv2/data", json=unknown, headers=dairy["snms"])).json()
    assert answer == {"status": -2, "message": "非法操作，索引1000在模板中不存在", "data": None}
    gone = (await client.get(DETAIL, params={"handle": handle}, headers=dairy["snms"])).json()
    assert gone["status"] == -2
    assert gone["data"] is None
    missing = (await client.get(DETAIL, headers=dairy["snms"])).json()
    assert missing == {"status": -2, "message": "缺少必要的请求参数: handle", "data": None}


async def test_one_identifier_reads_the_same_through_every_api(settings: Settings) -> None:
    async with native_node(settings) as running:
        client = running.http
        enterprise = await create_enterprise(client, "Yili Dairy")
        user = await snms_user(client, enterprise, "yili-mes")
        dairy = {**enterprise, "snms": await login(client, user["username"], user["password"])}
        prefix = await with_template(client, dairy)
        handle = f"{prefix}/MILK-SAME"
        await ok(await client.post("/identityv2/data", json=milk(handle), headers=dairy["snms"]))
        snms = await detail_values(client, handle, dairy["snms"])
        rest = (await client.get(f"/api/handles/{quote(handle)}")).json()
        node = (await client.get(f"/api/v1/identifiers/{quote(handle)}")).json()
        async with running.connection() as native:  # the Handle protocol, as the ID-SDK asks
            resolved = await native.resolve(handle)
    by_handle = {v["index"]: v["data"]["value"] for v in rest["values"] if v["index"] >= 2000}
    by_name = {a["index"]: a["value"] for a in node["attributes"].values()}
    by_native = {v["index"]: v["data"]["value"] for v in resolved.values()[1] if v["index"] >= 2000}
    assert {i: v for i, v in snms.items() if i >= 2000} == by_handle == by_name == by_native
    assert by_name == {2000: "纯牛奶 250ml", 2001: "B20260301-01"}
    # index 1001: the SNMS version in SNMS's answer, the node's reference in the others,
    # and both are accepted back as templateVersion.
    assert snms[1001] == "1.0.0"
    assert node["template"]["id"] == rest["values"][1]["data"]["value"].split("@")[0]


async def test_read_modify_write_through_handle_rest(
    client: httpx.AsyncClient, dairy: dict[str, Any]
) -> None:
    """As a device-sync integration updates: resolve through the Handle REST API, take
    index 1001 as templateVersion, drop it, change a value, PUT the whole list back."""
    prefix = await with_template(client, dairy)
    handle = f"{prefix}/MILK-RMW"
    await ok(await client.post("/identityv2/data", json=milk(handle), headers=dairy["snms"]))
    resolved = (await client.get(f"/api/handles/{quote(handle)}")).json()
    assert resolved["responseCode"] == 1
    template_version = next(v for v in resolved["values"] if v["index"] == 1001)["data"]["value"]
    values = [
        {"index": v["index"], "type": v["type"], "auth": "", "data": v["data"]}
        for v in resolved["values"]
        if v["index"] >= 2000
    ]
    values[1]["data"] = {"format": "string", "value": "B-CHANGED"}
    body = {"handle": handle, "templateVersion": template_version, "value": values}
    assert await ok(await client.put("/identityv2/data", json=body, headers=dairy["snms"]))
    after = await detail_values(client, handle, dairy["snms"])
    assert after[2001] == "B-CHANGED"
    assert after[1001] == "1.0.0"
    # Sending a value less removes it (the update replaces the template values).
    body["value"].append(
        {"index": 2002, "type": "origin", "data": {"format": "string", "value": "内蒙古"}}
    )
    await ok(await client.put("/identityv2/data", json=body, headers=dairy["snms"]))
    assert (await detail_values(client, handle, dairy["snms"]))[2002] == "内蒙古"
    await ok(await client.put("/identityv2/data", json=milk(handle), headers=dairy["snms"]))
    assert 2002 not in await detail_values(client, handle, dairy["snms"])
    unknown = (
        await client.put("/identityv2/data", json=milk(f"{prefix}/NOPE"), headers=dairy["snms"])
    ).json()
    assert unknown["status"] == -2


async def test_batch_create_answers_each_item_in_order(
    client: httpx.AsyncClient, dairy: dict[str, Any]
) -> None:
    prefix = await with_template(client, dairy)
    await ok(
        await client.post("/identityv2/data", json=milk(f"{prefix}/B-1"), headers=dairy["snms"])
    )
    sent = [
        milk(f"{prefix}/B-0"),
        milk(f"{prefix}/B-1"),  # exists already
        milk(f"{prefix}/B-2", batch=""),  # required and empty
        milk(f"{prefix}/B-3", version="no-such-template"),
        milk(f"{prefix}/B-4"),
    ]
    answers = await ok(
        await client.post("/identityv2/data/batchCreate", json=sent, headers=dairy["snms"])
    )
    assert [a["handle"] for a in answers] == [b["handle"] for b in sent]
    assert [a["code"] for a in answers] == [1, -2, -2, -2, 1]
    assert answers[0]["msg"] == "success"
    assert answers[1]["msg"] == "标识已存在"
    assert "batchNo" in answers[2]["msg"]
    assert "no-such-template" in answers[3]["msg"]
    assert (await detail_values(client, f"{prefix}/B-4", dairy["snms"]))[2001] == "B20260301-01"
    # Sent again in full (the documented recovery after a 504): exists, and nothing else.
    again = await ok(
        await client.post("/identityv2/data/batchCreate", json=sent[:1], headers=dairy["snms"])
    )
    assert again == [{"handle": f"{prefix}/B-0", "code": -2, "msg": "标识已存在"}]


async def test_more_than_2000_items_are_refused_whole(
    client: httpx.AsyncClient, dairy: dict[str, Any]
) -> None:
    prefix = await with_template(client, dairy)
    sent = [milk(f"{prefix}/MANY-{n}") for n in range(2001)]
    answer = await client.post("/identityv2/data/batchCreate", json=sent, headers=dairy["snms"])
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == -2
    assert "2000" in body["message"]
    assert body["data"] is None
    first = (await client.get(DETAIL, params={"handle": sent[0]["handle"]})).json()
    assert first["status"] == -2


async def test_batch_update_and_batch_delete(
    client: httpx.AsyncClient, dairy: dict[str, Any]
) -> None:
    prefix = await with_template(client, dairy)
    handles = [f"{prefix}/U-{n}" for n in range(3)]
    await ok(
        await client.post(
            "/identityv2/data/batchCreate", json=[milk(h) for h in handles], headers=dairy["snms"]
        )
    )
    changed = [milk(handles[0], batch="NEW-0"), milk(f"{prefix}/U-NONE"), milk(handles[2], "N2")]
    answers = await ok(
        await client.put("/identityv2/data/batchUpdate", json=changed, headers=dairy["snms"])
    )
    assert [a["code"] for a in answers] == [1, -2, 1]
    assert answers[1]["msg"] == "标识不存在"
    assert (await detail_values(client, handles[2], dairy["snms"]))[2001] == "N2"
    # The body is a bare array of handles, as the docs' example sends it.
    gone = await ok(
        await client.request(
            "DELETE",
            "/identityv2/data/batchDelete",
            json=[handles[0], f"{prefix}/U-NONE"],
            headers=dairy["snms"],
        )
    )
    assert gone == [
        {"handle": handles[0], "code": 1, "msg": "success"},
        {"handle": f"{prefix}/U-NONE", "code": -2, "msg": "标识不存在"},
    ]
    assert await ok(
        await client.request(
            "DELETE", "/identityv2/data", json={"handle": handles[1]}, headers=dairy["snms"]
        )
    )
    twice = await client.request(
        "DELETE", "/identityv2/data", json={"handle": handles[1]}, headers=dairy["snms"]
    )
    assert twice.json()["status"] == -2


async def test_status_codes_for_tokens_and_prefixes(
    client: httpx.AsyncClient, dairy: dict[str, Any]
) -> None:
    prefix = await with_template(client, dairy)
    body = milk(f"{prefix}/AUTH-1")
    for headers in ({}, {"Authorization": "Bearer expired-or-made-up"}):
        answer = await client.post("/identityv2/data", json=body, headers=headers)
        assert answer.status_code == 200
        assert answer.json()["status"] == -1
    other = await create_enterprise(client, "Mengniu")
    await snms_user(client, other, "mengniu-mes")
    theirs = await login(client, "mengniu-mes", PASSWORD)
    foreign = await client.post("/identityv2/data", json=body, headers=theirs)
    assert foreign.status_code == 200
    assert foreign.json()["status"] == -3
    batch = await client.post("/identityv2/data/batchCreate", json=[body], headers=theirs)
    assert batch.json()["data"][0]["code"] == -3
    by_operator = await client.post("/identityv2/data", json=body, headers=OPERATOR)
    assert by_operator.json()["status"] == 1


async def test_detail_without_a_token_shows_public_values(
    client: httpx.AsyncClient, dairy: dict[str, Any]
) -> None:
    """A resolution page calls detail with no Authorization header."""
    prefix = await with_template(client, dairy)
    handle = f"{prefix}/PUBLIC-1"
    await ok(await client.post("/identityv2/data", json=milk(handle), headers=dairy["snms"]))
    values = await detail_values(client, handle, {})
    assert values[2001] == "B20260301-01"


async def test_control_characters_are_refused_naming_the_field(
    client: httpx.AsyncClient, dairy: dict[str, Any]
) -> None:
    prefix = await with_template(client, dairy)
    body = milk(f"{prefix}/NUL-1", batch="B\x00-1")
    answer = (await client.post("/identityv2/data", json=body, headers=dairy["snms"])).json()
    assert answer["status"] == -2
    assert answer["message"].startswith("body.value[1].data.value: contains the control character")
    batch = await ok(
        await client.post("/identityv2/data/batchCreate", json=[body], headers=dairy["snms"])
    )
    assert batch[0]["code"] == -2
    assert "U+0000" in batch[0]["msg"]
