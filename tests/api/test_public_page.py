"""The page a QR scan opens (issue 15): language, the product page with its trace, recalls,
scan records and the error pages."""

from __future__ import annotations

import html
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import select

from app.registry.templates import DEVICE, VACCINE_UNIT
from app.storage.models import OutboxEvent
from tests.api.factories import part_of, put
from tests.api.supply_chain import PRODUCT_NAME, chain, identifier
from tests.conftest import OPERATOR, bearer, create_enterprise, free_port, node_client

ZH = {"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}
EN = {"Accept-Language": "en-GB,en;q=0.9"}


async def page(client: httpx.AsyncClient, path: str, status: int = 200, **headers: str) -> str:
    answer = await client.get(path, headers=headers)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    return html.unescape(answer.text)


async def recall_values(client: httpx.AsyncClient, handle: str) -> list[dict[str, Any]]:
    answer = await client.get(f"/api/handles/{handle}")
    assert answer.status_code == 200, answer.text
    return [v for v in answer.json()["values"] if v["type"] == "RECALL"]


# --- language ---


async def test_chinese_for_a_chinese_phone_english_on_request(client: httpx.AsyncClient) -> None:
    supply = await chain(client)
    zh = await page(client, f"/{supply.product}", **ZH)
    assert '<html lang="zh-Hans">' in zh
    assert "产品名称" in zh
    assert "Product name" not in zh
    assert "食品产品" in zh  # the template's title in Chinese
    en = await page(client, f"/{supply.product}?lang=en", **ZH)
    assert '<html lang="en">' in en
    assert "Product name" in en
    assert "产品名称" not in en
    for tag in ("zh", "zh-Hans", "zh-Hans-CN"):
        assert '<html lang="zh-Hans">' in await page(
            client, f"/{supply.product}", **{"Accept-Language": tag}
        )
    assert '<html lang="en">' in await page(
        client, f"/{supply.product}", **{"Accept-Language": "fr"}
    )


async def test_dates_and_numbers_are_written_for_the_language(client: httpx.AsyncClient) -> None:
    supply = await chain(client)
    zh = await page(client, f"/{supply.batch}", **ZH)
    en = await page(client, f"/{supply.batch}", **EN)
    assert "2026年3月1日" in zh
    assert "March 1, 2026" in en
    assert "12,000" in en  # quantity


async def test_index_login_and_error_pages_speak_chinese(client: httpx.AsyncClient) -> None:
    assert "解析标识" in await page(client, "/", **ZH)
    assert "运维人员登录" in await page(client, "/dashboard", **ZH)
    assert "Operator log in" in await page(client, "/dashboard?lang=en", **ZH)


# --- the product page ---


async def test_a_unit_page_has_the_product_its_enterprise_and_its_trace(
    client: httpx.AsyncClient,
) -> None:
    supply = await chain(client)
    shown = await page(client, f"/{supply.unit}", **EN)
    assert f"<h1>{PRODUCT_NAME}</h1>" in shown  # titled by the product it references
    assert "Hohhot Grassland Dairy" in shown
    trace = shown[shown.index('id="trace"') :]
    for above in (supply.case, supply.batch, supply.product):
        assert f'href="/{above}?lang=en"' in trace
    assert "<svg" in shown  # the QR code itself
    assert "B20260301-01" in shown
    assert "inspectionReport" not in shown
    assert "QC-20260301" not in shown
    case = await page(client, f"/{supply.case}", **EN)
    assert "1 identifier is packed in or made from this one." in case


async def test_a_device_page_says_whether_it_is_online(client: httpx.AsyncClient) -> None:
    plant = await create_enterprise(client, "Hohhot Cold Store")
    attributes = {**DEVICE["example"], "online": "true", "lastSeen": "2026-12-01T08:00:00Z"}
    sensor = await identifier(client, plant, "SENSOR-1", "device", attributes)
    assert '<span class="badge on">在线</span>' in await page(client, f"/{sensor}", **ZH)


# --- recalls ---


async def test_recalling_a_batch_warns_on_every_unit_below_it(client: httpx.AsyncClient) -> None:
    supply = await chain(client, units=3)
    assert await recall_values(client, supply.unit) == []  # now cached without a recall
    reason = "Aflatoxin M1 above the limit"
    recalled = await client.post(
        f"/api/v1/identifiers/{supply.batch}/recall",
        json={"reason": reason},
        headers=bearer(supply.dairy),
    )
    assert recalled.status_code == 200, recalled.text
    assert recalled.json()["recalled"] is True

    (warning,) = await recall_values(client, supply.unit)
    assert warning["data"]["value"] == reason
    assert warning["references"] == [{"handle": supply.batch, "index": 1010}]
    shown = await page(client, f"/{supply.unit}", **ZH)
    assert 'role="alert"' in shown
    assert reason in shown
    assert "已召回" in shown
    assert "UTC+8" in shown  # the recall's time, in the node's zone (Asia/Shanghai by default)
    (own,) = await recall_values(client, supply.batch)
    assert own["data"]["value"] == reason
    assert "references" not in own
    assert await recall_values(client, supply.product) == []  # above the batch: untouched

    lifted = await client.delete(
        f"/api/v1/identifiers/{supply.batch}/recall", headers=bearer(supply.dairy)
    )
    assert lifted.status_code == 200, lifted.text
    assert await recall_values(client, supply.unit) == []
    assert 'role="alert"' not in await page(client, f"/{supply.unit}", **EN)


async def test_a_recall_reaches_units_linked_privately_without_showing_the_link(
    client: httpx.AsyncClient,
) -> None:
    """A unit whose link to its batch is not public still warns (the shopper must not eat
    it), but its public answer and page do not name the batch the enterprise kept private."""
    supply = await chain(client)
    unit = f"{supply.dairy['prefix']}/UNIT-PRIVATE-LINK"
    values = [
        {"index": 1, "type": "DESC", "data": PRODUCT_NAME},
        part_of(supply.batch, permissions="1100"),  # read by its owner only
    ]
    await put(client, bearer(supply.dairy), unit, values, status=201)
    assert await recall_values(client, unit) == []
    reason = "Listeria found in the filling line"
    recalled = await client.post(
        f"/api/v1/identifiers/{supply.batch}/recall",
        json={"reason": reason},
        headers=bearer(supply.dairy),
    )
    assert recalled.status_code == 200, recalled.text

    (warning,) = await recall_values(client, unit)
    assert warning["data"]["value"] == reason
    assert "references" not in warning  # the private link stays private
    shown = await page(client, f"/{unit}", **EN)
    assert 'role="alert"' in shown
    assert reason in shown
    assert supply.batch not in shown
    owner = await client.get(f"/api/handles/{unit}", headers=bearer(supply.dairy))
    linked = {r["handle"] for v in owner.json()["values"] for r in v.get("references", [])}
    assert supply.batch in linked


async def recall_counts(client: httpx.AsyncClient) -> dict[str, float]:
    """idnode_recalls_total by action (the metrics are the process's, so tests use deltas)."""
    lines = (await client.get("/metrics")).text.splitlines()
    return {
        action: float(line.rpartition(" ")[2])
        for line in lines
        for action in ("recall", "undo")
        if line.startswith(f'idnode_recalls_total{{action="{action}"}}')
    }


async def test_recalls_are_in_history_the_outbox_and_metrics(
    client: httpx.AsyncClient, app: Any
) -> None:
    supply = await chain(client)
    before = await recall_counts(client)
    for _ in range(2):
        await client.post(
            f"/api/v1/identifiers/{supply.batch}/recall",
            json={"reason": "Foreign matter"},
            headers=bearer(supply.dairy),
        )
    await client.delete(f"/api/v1/identifiers/{supply.batch}/recall", headers=OPERATOR)
    changes = (await client.get(f"/api/v1/identifiers/{supply.batch}/history")).json()["changes"]
    assert [1010 in c.get("changed", []) for c in changes[-2:]] == [True, True]
    assert len(changes) == 3  # create, recall, undo (the restated recall changed nothing)
    async with app.state.node.database.read_session() as session:
        events = (
            await session.execute(
                select(OutboxEvent.kind, OutboxEvent.data).order_by(OutboxEvent.id)
            )
        ).all()
    recalls = [(kind, data) for kind, data in events if kind.startswith("identifier.recall")]
    assert recalls == [
        ("identifier.recall", {"handle": supply.batch, "reason": "Foreign matter"}),
        ("identifier.recall", {"handle": supply.batch, "reason": "Foreign matter"}),
        ("identifier.recall_undone", {"handle": supply.batch}),
    ]
    after = await recall_counts(client)
    assert {a: after[a] - before[a] for a in after} == {"recall": 2, "undo": 1}


async def test_only_the_owner_or_the_operator_may_recall(client: httpx.AsyncClient) -> None:
    supply = await chain(client)
    rival = await create_enterprise(client, "Another Dairy")
    path = f"/api/v1/identifiers/{supply.batch}/recall"
    body = {"reason": "not mine to recall"}
    assert (await client.post(path, json=body)).status_code == 401
    assert (await client.post(path, json=body, headers=bearer(rival))).status_code == 403
    assert (await client.post(path, json={"reason": " "}, headers=OPERATOR)).status_code == 400
    assert (await client.post(path, json={"reason": "a\x00b"}, headers=OPERATOR)).status_code == 400
    missing = f"{supply.dairy['prefix']}/NO-SUCH-BATCH"
    answer = await client.post(f"/api/v1/identifiers/{missing}/recall", json=body, headers=OPERATOR)
    assert answer.status_code == 404
    assert await recall_values(client, supply.unit) == []


# --- scans ---


async def test_scans_are_counted_by_day_and_shown_when_the_template_asks(
    client: httpx.AsyncClient, app: Any
) -> None:
    pharma = await create_enterprise(client, "Beijing Bio")
    vial = await identifier(client, pharma, "VIAL-1", "vaccine.unit", VACCINE_UNIT["example"])
    for _ in range(3):
        await page(client, f"/{vial}", **EN)
    await app.state.node.scans.flush()
    shown = await page(client, f"/{vial}", **EN)
    assert "scanned 3 times" in shown  # this fourth scan is still in memory
    await app.state.node.scans.flush()
    today = datetime.now(UTC).date().isoformat()
    counts = await client.get(f"/api/v1/identifiers/{vial}/scans", headers=bearer(pharma))
    assert counts.status_code == 200, counts.text
    assert counts.json()["days"] == [{"day": today, "scans": 4}]
    assert (await client.get(f"/api/v1/identifiers/{vial}/scans")).status_code == 401


async def test_pages_of_templates_without_show_scans_keep_them_to_the_enterprise(
    client: httpx.AsyncClient, app: Any
) -> None:
    supply = await chain(client)
    await page(client, f"/{supply.unit}")
    await app.state.node.scans.flush()
    assert "scanned" not in await page(client, f"/{supply.unit}", **EN)


async def test_api_resolves_are_not_scans(client: httpx.AsyncClient, app: Any) -> None:
    supply = await chain(client)
    await client.get(f"/api/handles/{supply.unit}")
    await app.state.node.scans.flush()
    counts = await client.get(f"/api/v1/identifiers/{supply.unit}/scans", headers=OPERATOR)
    assert counts.json()["days"] == []


# --- errors ---


@pytest.mark.parametrize(
    ("path", "status", "zh", "en"),
    [
        ("/88.999.9/NO-SUCH-THING", 404, "未找到该标识", "Identifier not found"),
        ("/no-slash-here", 400, "标识格式不正确", "Not a valid identifier"),
    ],
)
async def test_error_pages_say_what_to_do_in_the_language(
    client: httpx.AsyncClient, path: str, status: int, zh: str, en: str
) -> None:
    chinese = await page(client, path, status, **ZH)
    assert zh in chinese
    assert "Traceback" not in chinese
    assert en in await page(client, path, status, **EN)


async def test_the_page_of_a_deleted_identifier_as_it_was(client: httpx.AsyncClient) -> None:
    supply = await chain(client)
    before = datetime.now(UTC).isoformat()
    deleted = await client.delete(f"/api/handles/{supply.unit}", headers=bearer(supply.dairy))
    assert deleted.status_code == 200, deleted.text
    then = await page(client, f"/{supply.unit}?at={quote(before)}", **EN)
    assert "As it was at" in then
    assert "B20260301-01" in then  # its batch number then (no trace: it is gone now)
    await page(client, f"/{supply.unit}", 404, **EN)


async def test_an_unreachable_upstream_is_a_page_saying_try_again(settings: Any) -> None:
    """An identifier outside this node's prefix, with the upstream node down: 502, a page."""
    down = settings.model_copy(
        update={"upstream_url": f"http://127.0.0.1:{free_port()}", "upstream_timeout": 1}
    )
    async with node_client(down) as client:
        chinese = await page(client, "/86.100.1/MILK-1", 502, **ZH)
        english = await page(client, "/86.100.1/MILK-1", 502, **EN)
    assert "暂时无法查询" in chinese
    assert "try again in a minute" in english
