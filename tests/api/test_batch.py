"""Bulk registration: ``POST /api/v1/identifiers:batch`` (issue 3), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
import pytest

from app.registry.templates import DEVICE, FOOD_BATCH
from app.settings import Settings
from tests.api.factories import GAUGE, add_gauge_template
from tests.conftest import OPERATOR, bearer, create_enterprise, node_client

BATCH = FOOD_BATCH["example"]
DEVICE_ATTRS = DEVICE["example"]
URL = "/api/v1/identifiers:batch"
NDJSON = {"Content-Type": "application/x-ndjson"}


def food(handle: str, **attributes: Any) -> dict[str, Any]:
    return {"handle": handle, "template": "food.batch", "attributes": {**BATCH, **attributes}}


def device(handle: str, hardware_id: str) -> dict[str, Any]:
    return {
        "handle": handle,
        "template": "device",
        "attributes": {**DEVICE_ATTRS, "hardwareId": hardware_id},
    }


def ndjson(items: list[Any]) -> bytes:
    return b"".join(orjson.dumps(i) + b"\n" for i in items)


async def send_ndjson(
    client: httpx.AsyncClient,
    enterprise: dict[str, Any],
    items: list[Any] | bytes,
    *,
    expect: int = 200,
    **params: str,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    body = items if isinstance(items, bytes) else ndjson(items)
    answer = await client.post(
        URL, content=body, params=params, headers={**NDJSON, **bearer(enterprise)}
    )
    assert answer.status_code == expect, answer.text
    assert answer.headers["content-type"] == "application/x-ndjson"
    lines = [orjson.loads(line) for line in answer.content.splitlines()]
    return lines[:-1], lines[-1]["summary"]


def bare(result: dict[str, Any]) -> dict[str, Any]:
    """A result without the attributes it carries."""
    return {k: v for k, v in result.items() if k != "attributes"}


async def exists(client: httpx.AsyncClient, handle: str) -> bool:
    answer = await client.get(f"/api/handles/{handle}")
    assert answer.status_code in {200, 404}, answer.text
    return answer.status_code == 200


async def test_mixed_items_each_get_a_result_in_order(client: httpx.AsyncClient) -> None:
    dairy = await create_enterprise(client)
    p = dairy["prefix"]
    results, summary = await send_ndjson(
        client,
        dairy,
        [
            food(f"{p}/OK-1"),
            food(f"{p}/BAD-1", productionDate="2026-02-30", quantity="lots"),
            {"prefix": p, "template": "food.batch", "attributes": BATCH},
            {"handle": f"{p}/BAD-2", "template": "no.such.template", "attributes": {}},
            food(f"{p}/OK-2"),
        ],
    )
    assert summary == {"accepted": 3, "rejected": 2}
    assert [r["line"] for r in results] == [1, 2, 3, 4, 5]
    assert bare(results[0]) == {"line": 1, "handle": f"{p}/OK-1", "created": True}
    assert results[1]["error"] == "TemplateViolation"
    assert {f["name"] for f in results[1]["fields"]} == {"productionDate", "quantity"}
    assert results[2]["created"] is True
    assert results[2]["handle"].startswith(f"{p}/")
    assert results[3]["error"] == "TemplateNotFound"
    assert "no.such.template" in results[3]["detail"]
    assert results[4]["handle"] == f"{p}/OK-2"

    for handle in (f"{p}/OK-1", results[2]["handle"], f"{p}/OK-2"):
        shown = await client.get(f"/api/v1/identifiers/{handle}", headers=bearer(dairy))
        assert shown.status_code == 200, shown.text
        assert shown.json()["attributes"]["batchNumber"]["value"] == BATCH["batchNumber"]
    assert not await exists(client, f"{p}/BAD-1")
    found = await client.get(
        "/api/v1/search",
        params={"template": "food.batch", "attr.batchNumber": BATCH["batchNumber"]},
    )
    assert {i["handle"] for i in found.json()["items"]} == {
        f"{p}/OK-1",
        results[2]["handle"],
        f"{p}/OK-2",
    }


async def test_atomic_batch_with_a_bad_item_writes_nothing(client: httpx.AsyncClient) -> None:
    dairy = await create_enterprise(client)
    p = dairy["prefix"]
    items = [food(f"{p}/A-1"), food(f"{p}/A-2", packagingLevel="crate"), food(f"{p}/A-3")]
    answer = await client.post(
        URL, content=ndjson(items), params={"atomic": "true"}, headers={**NDJSON, **bearer(dairy)}
    )
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["error"] == "BatchRejected"
    assert "nothing was written" in body["detail"]
    assert (body["accepted"], body["rejected"]) == (0, 1)
    assert [(r["line"], r["fields"][0]["name"]) for r in body["results"]] == [(2, "packagingLevel")]
    for n in (1, 2, 3):
        assert not await exists(client, f"{p}/A-{n}")

    results, summary = await send_ndjson(
        client, dairy, [food(f"{p}/A-1"), food(f"{p}/A-3")], atomic="true"
    )
    assert summary == {"accepted": 2, "rejected": 0}
    assert all(r["created"] for r in results)
    assert await exists(client, f"{p}/A-1")
    assert await exists(client, f"{p}/A-3")


async def test_a_json_array_gets_a_json_document(client: httpx.AsyncClient) -> None:
    dairy = await create_enterprise(client)
    p = dairy["prefix"]
    answer = await client.post(
        URL, json=[food(f"{p}/J-1"), {"template": "food.batch"}], headers=bearer(dairy)
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert (body["accepted"], body["rejected"]) == (1, 1)
    assert bare(body["results"][0]) == {"line": 1, "handle": f"{p}/J-1", "created": True}
    assert body["results"][1]["error"] == "InvalidRequest"
    assert '"handle"' in body["results"][1]["detail"]

    not_a_list = await client.post(URL, json=food(f"{p}/J-2"), headers=bearer(dairy))
    assert not_a_list.status_code == 400
    assert "JSON array" in not_a_list.json()["detail"]


async def test_duplicate_handles_in_the_batch_and_against_existing_ones(
    client: httpx.AsyncClient,
) -> None:
    dairy = await create_enterprise(client)
    p = dairy["prefix"]
    await send_ndjson(client, dairy, [food(f"{p}/OLD")])
    results, summary = await send_ndjson(
        client, dairy, [food(f"{p}/NEW"), food(f"{p}/OLD"), food(f"{p}/NEW", quantity=1)]
    )
    assert summary == {"accepted": 1, "rejected": 2}
    assert results[1]["error"] == "HandleAlreadyExists"
    assert f"{p}/OLD" in results[1]["detail"]
    assert results[2]["error"] == "HandleAlreadyExists"
    assert "line 1" in results[2]["detail"]
    shown = await client.get(f"/api/v1/identifiers/{p}/NEW")
    assert shown.json()["attributes"]["quantity"]["value"] == 12000  # the first one won


async def test_unique_values_clash_within_the_batch_and_with_existing_ones(
    client: httpx.AsyncClient,
) -> None:
    plant = await create_enterprise(client, "Plant")
    p = plant["prefix"]
    await send_ndjson(client, plant, [device(f"{p}/D-OLD", "70B3D57ED0000001")])
    results, summary = await send_ndjson(
        client,
        plant,
        [
            device(f"{p}/D-1", "70B3D57ED0000002"),
            device(f"{p}/D-2", "70B3D57ED0000002"),
            device(f"{p}/D-3", "70B3D57ED0000001"),
            device(f"{p}/D-4", "70B3D57ED0000004"),
        ],
    )
    assert summary == {"accepted": 2, "rejected": 2}
    assert results[1]["error"] == "TemplateViolation"
    assert results[1]["fields"][0]["name"] == "hardwareId"
    assert "line 1" in results[1]["fields"][0]["message"]
    assert results[2]["error"] == "TemplateViolation"
    assert f"{p}/D-OLD" in results[2]["fields"][0]["message"]
    assert not await exists(client, f"{p}/D-2")
    assert not await exists(client, f"{p}/D-3")

    # Another enterprise learns only that the value is taken, not by whom.
    other = await create_enterprise(client, "Other")
    theirs, _ = await send_ndjson(
        client, other, [device(f"{other['prefix']}/X", "70B3D57ED0000004")]
    )
    assert theirs[0]["error"] == "TemplateViolation"
    assert p not in theirs[0]["fields"][0]["message"]

    # The value of a rejected row stays free.
    again, _ = await send_ndjson(client, plant, [device(f"{p}/D-5", "70B3D57ED0000002")])
    assert again[0]["error"] == "TemplateViolation"  # held by D-1
    free, _ = await send_ndjson(client, plant, [device(f"{p}/D-6", "70B3D57ED0000006")])
    assert free[0]["created"] is True


async def test_idempotency_keys_make_a_retried_batch_safe(client: httpx.AsyncClient) -> None:
    dairy = await create_enterprise(client)
    p = dairy["prefix"]
    items = [
        {"prefix": p, "template": "food.batch", "attributes": BATCH, "idempotencyKey": "k-1"},
        {"prefix": p, "template": "food.batch", "attributes": BATCH, "idempotencyKey": "k-2"},
        {"prefix": p, "template": "food.batch", "attributes": BATCH, "idempotencyKey": "k-1"},
    ]
    first, summary = await send_ndjson(client, dairy, items)
    assert summary == {"accepted": 3, "rejected": 0}
    assert first[0]["created"] is True
    assert bare(first[2]) == {"line": 3, "handle": first[0]["handle"], "created": False}
    assert first[1]["handle"] != first[0]["handle"]

    retried, summary = await send_ndjson(client, dairy, items)
    assert summary == {"accepted": 3, "rejected": 0}
    assert [(r["handle"], r["created"]) for r in retried] == [
        (first[0]["handle"], False),
        (first[1]["handle"], False),
        (first[0]["handle"], False),
    ]
    # The single endpoint shares the keys.
    single = await client.post(
        "/api/v1/identifiers",
        json={"prefix": p, "template": "food.batch", "attributes": BATCH, "idempotencyKey": "k-2"},
        headers=bearer(dairy),
    )
    assert single.status_code == 200, single.text
    assert single.json()["handle"] == first[1]["handle"]


async def test_malformed_line_is_named_and_the_others_go_on(client: httpx.AsyncClient) -> None:
    dairy = await create_enterprise(client)
    p = dairy["prefix"]
    body = ndjson([food(f"{p}/M-1")]) + b'{"handle": "broken\n\n' + ndjson([food(f"{p}/M-2")])
    results, summary = await send_ndjson(client, dairy, body)
    assert summary == {"accepted": 2, "rejected": 1}
    assert results[1]["line"] == 2
    assert results[1]["error"] == "InvalidRequest"
    assert "line 2 is not valid JSON" in results[1]["detail"]
    assert bare(results[2]) == {"line": 4, "handle": f"{p}/M-2", "created": True}  # blank line 3

    atomic = await client.post(
        URL,
        content=ndjson([food(f"{p}/M-3")]) + b"[1,\n",
        params={"atomic": "true"},
        headers={**NDJSON, **bearer(dairy)},
    )
    assert atomic.status_code == 422
    assert "line 2 is not valid JSON" in atomic.json()["results"][0]["detail"]
    assert not await exists(client, f"{p}/M-3")


async def test_enterprises_register_only_under_their_own_prefixes(
    client: httpx.AsyncClient,
) -> None:
    dairy = await create_enterprise(client)
    other = await create_enterprise(client, "Other")
    results, summary = await send_ndjson(
        client,
        dairy,
        [food(f"{other['prefix']}/X-1"), food(f"{dairy['prefix']}/ADMIN"), food("88.1/X")],
    )
    assert summary == {"accepted": 0, "rejected": 3}
    assert [r["error"] for r in results] == [
        "PermissionDenied",
        "PermissionDenied",
        "NotResponsible",
    ]
    by_operator = await client.post(
        URL, content=ndjson([food(f"{other['prefix']}/X-1")]), headers={**NDJSON, **OPERATOR}
    )
    assert orjson.loads(by_operator.content.splitlines()[0])["created"] is True
    anonymous = await client.post(URL, content=ndjson([food("88.999.1/X")]), headers=NDJSON)
    assert anonymous.status_code == 401


@pytest.fixture
async def small_client(settings: Settings) -> Any:
    """A node whose batch body limit is 2 KiB and whose batches commit every 2 items."""
    small = settings.model_copy(update={"batch_max_bytes": 2048, "batch_chunk_rows": 2})
    async with node_client(small, emptied=True) as http:
        yield http


async def test_a_body_over_the_limit_is_refused_and_nothing_written(
    small_client: httpx.AsyncClient,
) -> None:
    dairy = await create_enterprise(small_client)
    p = dairy["prefix"]
    items = [food(f"{p}/L-{n}") for n in range(10)]
    for params in ({}, {"atomic": "true"}):
        answer = await small_client.post(
            URL, content=ndjson(items), params=params, headers={**NDJSON, **bearer(dairy)}
        )
        assert answer.status_code == 413, answer.text
        assert answer.json()["error"] == "RequestTooLarge"
        assert "2048" in answer.json()["detail"]
    as_array = await small_client.post(URL, json=items, headers=bearer(dairy))
    assert as_array.status_code == 413
    assert not await exists(small_client, f"{p}/L-0")


async def test_a_streamed_body_over_the_limit_answers_what_was_done(
    small_client: httpx.AsyncClient,
) -> None:
    dairy = await create_enterprise(small_client)
    p = dairy["prefix"]

    async def stream() -> Any:  # no Content-Length: the limit is met mid-stream
        for n in range(10):
            yield ndjson([food(f"{p}/S-{n}")])

    answer = await small_client.post(URL, content=stream(), headers={**NDJSON, **bearer(dairy)})
    assert answer.status_code == 413, answer.text
    *results, last = [orjson.loads(line) for line in answer.content.splitlines()]
    assert last["summary"]["stopped"]["error"] == "RequestTooLarge"
    assert "stopped at line" in last["summary"]["stopped"]["detail"]
    # Whole chunks read before the limit was met were written, and are answered; the rest
    # (the partial chunk too) was not.
    assert 0 < last["summary"]["accepted"] == len(results) < 10
    assert [r["handle"] for r in results] == [f"{p}/S-{n}" for n in range(len(results))]
    for r in results:
        assert await exists(small_client, r["handle"])
    assert not await exists(small_client, f"{p}/S-{len(results)}")


async def test_chunks_commit_on_their_own_and_see_each_other(
    small_client: httpx.AsyncClient,
) -> None:
    dairy = await create_enterprise(small_client)
    p = dairy["prefix"]
    items = [
        food(f"{p}/C-1"),
        food(f"{p}/C-2"),
        food(f"{p}/C-1", quantity=5),  # a later chunk: the first is committed by now
        {"prefix": p, "template": "food.batch", "attributes": BATCH, "idempotencyKey": "k"},
        food(f"{p}/C-5"),
        {"prefix": p, "template": "food.batch", "attributes": BATCH, "idempotencyKey": "k"},
    ]
    results, summary = await send_ndjson(small_client, dairy, items)
    assert summary == {"accepted": 5, "rejected": 1}
    assert results[2]["error"] == "HandleAlreadyExists"
    assert bare(results[5]) == {"line": 6, "handle": results[3]["handle"], "created": False}

    atomic = [food(f"{p}/T-1"), food(f"{p}/T-2"), food(f"{p}/T-3"), food(f"{p}/C-5")]
    answer = await small_client.post(
        URL, content=ndjson(atomic), params={"atomic": "true"}, headers={**NDJSON, **bearer(dairy)}
    )
    assert answer.status_code == 422, answer.text
    assert [r["line"] for r in answer.json()["results"]] == [4]
    for n in (1, 2, 3):  # written in earlier chunks of the one transaction, then undone
        assert not await exists(small_client, f"{p}/T-{n}")


async def test_an_endless_line_is_refused_naming_it(client: httpx.AsyncClient) -> None:
    dairy = await create_enterprise(client)

    async def stream() -> Any:
        yield ndjson([food(f"{dairy['prefix']}/E-1")])
        for _ in range(20):
            yield b"x" * 100_000  # never a newline

    answer = await client.post(URL, content=stream(), headers={**NDJSON, **bearer(dairy)})
    assert answer.status_code == 413, answer.text
    stopped = orjson.loads(answer.content.splitlines()[-1])["summary"]["stopped"]
    assert "line 2 is longer than" in stopped["detail"]


async def test_batch_registrations_keep_history_and_references(
    client: httpx.AsyncClient,
) -> None:
    dairy = await create_enterprise(client)
    p = dairy["prefix"]
    product = f"{p}/PRODUCT-MILK-250"
    made = await client.put(f"/api/handles/{product}", json={"values": []}, headers=bearer(dairy))
    assert made.status_code == 201, made.text
    # Deleted before: the batch continues its history rather than starting it again.
    put = await client.put(f"/api/handles/{p}/B-2", json={"values": []}, headers=bearer(dairy))
    assert put.status_code == 201, put.text
    assert (await client.delete(f"/api/handles/{p}/B-2", headers=bearer(dairy))).is_success

    _, summary = await send_ndjson(
        client, dairy, [food(f"{p}/B-1", product=product), food(f"{p}/B-2", product=product)]
    )
    assert summary == {"accepted": 2, "rejected": 0}

    first = (await client.get(f"/api/v1/identifiers/{p}/B-1/history")).json()
    assert [(c["version"], c["operation"]) for c in first["changes"]] == [(1, "create")]
    assert first["changes"][0]["actor"] == f"enterprise:{p}"
    again = (await client.get(f"/api/v1/identifiers/{p}/B-2/history")).json()
    assert [c["operation"] for c in again["changes"]] == ["create", "delete", "create"]
    assert [c["version"] for c in again["changes"]] == [1, 2, 3]

    down = await client.get(f"/api/v1/identifiers/{product}/trace", params={"direction": "down"})
    assert down.status_code == 200, down.text
    assert {n["handle"] for n in down.json()["nodes"]} >= {f"{p}/B-1", f"{p}/B-2"}


async def test_concurrent_calls_with_the_same_new_keys_mint_each_identifier_once(
    client: httpx.AsyncClient,
) -> None:
    """Two batches and single mints racing with the same idempotency keys, none used
    before: every key ends with one identifier, and every answer names that one."""
    dairy = await create_enterprise(client)
    p = dairy["prefix"]
    keys = [f"race-{n}" for n in range(60)]
    items = [
        {"prefix": p, "template": "food.batch", "attributes": BATCH, "idempotencyKey": key}
        for key in keys
    ]

    async def single(key: str) -> dict[str, Any]:
        answer = await client.post(
            "/api/v1/identifiers",
            json={
                "prefix": p,
                "template": "food.batch",
                "attributes": BATCH,
                "idempotencyKey": key,
            },
            headers=bearer(dairy),
        )
        assert answer.status_code in {200, 201}, answer.text
        return dict(answer.json())

    first, second, *singles = await asyncio.gather(
        send_ndjson(client, dairy, items),
        send_ndjson(client, dairy, list(reversed(items))),
        *(single(key) for key in keys[::10]),
    )
    by_key: dict[str, set[str]] = {}
    for key, result in zip(keys, first[0], strict=True):
        by_key.setdefault(key, set()).add(result["handle"])
    for key, result in zip(reversed(keys), second[0], strict=True):
        by_key.setdefault(key, set()).add(result["handle"])
    for key, result in zip(keys[::10], singles, strict=True):
        by_key.setdefault(key, set()).add(result["handle"])
    assert all(len(handles) == 1 for handles in by_key.values()), by_key
    listed = await client.get(
        "/api/v1/search",
        params={"template": "food.batch", "limit": 100},
        headers=bearer(dairy),
    )
    assert listed.status_code == 200, listed.text
    assert sorted(i["handle"] for i in listed.json()["items"]) == sorted(
        h for handles in by_key.values() for h in handles
    )


async def test_batch_results_carry_attributes_as_their_json_types(
    client: httpx.AsyncClient,
) -> None:
    """Each registered item answers with its attributes typed as the single create does:
    numbers and true/false as JSON numbers and booleans, dates as the date text; so does a
    retry answered from its idempotency key."""
    plant = await create_enterprise(client)
    template = await add_gauge_template(client, plant)
    p = plant["prefix"]
    items = [
        {"prefix": p, "template": template, "attributes": {"serial": "B-1", **GAUGE}},
        {"prefix": p, "template": template, "idempotencyKey": "g-2",
         "attributes": {"serial": "B-2", "quantity": "0.25", "online": "false"}},
        {"prefix": p, "template": template, "attributes": {"serial": "B-3", "quantity": "many"}},
    ]  # fmt: skip
    results, summary = await send_ndjson(client, plant, items)
    assert summary == {"accepted": 2, "rejected": 1}
    assert results[0]["attributes"] == {"serial": "B-1", **GAUGE}
    assert results[1]["attributes"] == {"serial": "B-2", "quantity": 0.25, "online": False}
    assert "attributes" not in results[2]
    single = await client.get(f"/api/v1/identifiers/{results[0]['handle']}")
    assert {k: v["value"] for k, v in single.json()["attributes"].items()} == {
        "serial": "B-1",
        **GAUGE,
    }

    answer = await client.post(URL, json=items[1:2], headers=bearer(plant))
    assert answer.status_code == 200, answer.text
    [retried] = answer.json()["results"]
    assert retried == {**results[1], "line": 1, "created": False}
