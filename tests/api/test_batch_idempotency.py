"""Idempotency keys in batches carry the request's fingerprint, as on the single mint: a
retry (same key, same item) gets the first identifier, an item reusing a key for another
request is refused with ``IdempotencyKeyReused``; keys are shared with ``POST
/api/v1/identifiers``. Both backends (PostgreSQL writes through COPY), NDJSON and JSON array,
atomic and not, one chunk and several."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.registry.templates import FOOD_BATCH
from app.settings import Settings
from tests.api.test_batch import NDJSON, URL, bare, ndjson, send_ndjson, small_client
from tests.conftest import bearer, create_enterprise

__all__ = ["small_client"]  # the fixture: a node whose batches commit every 2 items

BATCH = FOOD_BATCH["example"]


def keyed(prefix: str, key: str, **attributes: Any) -> dict[str, Any]:
    return {
        "prefix": prefix,
        "template": "food.batch",
        "attributes": {**BATCH, **attributes},
        "idempotencyKey": key,
    }


async def test_a_key_reused_for_another_item_is_refused_per_item(
    client: httpx.AsyncClient,
) -> None:
    dairy = await create_enterprise(client)
    p = dairy["prefix"]
    first, _ = await send_ndjson(client, dairy, [keyed(p, "k-1"), keyed(p, "k-2")])
    assert [r["created"] for r in first] == [True, True]

    again = [keyed(p, "k-1"), keyed(p, "k-2", quantity=7), keyed(p, "k-3")]
    results, summary = await send_ndjson(client, dairy, again)
    assert summary == {"accepted": 2, "rejected": 1}
    assert bare(results[0]) == {"line": 1, "handle": first[0]["handle"], "created": False}
    assert results[1]["error"] == "IdempotencyKeyReused"
    assert "k-2" in results[1]["detail"]
    assert first[1]["handle"] in results[1]["detail"]
    assert results[2]["created"] is True
    # The refused item changed nothing: k-2's identifier keeps its first quantity.
    search = await client.get(
        "/api/v1/search",
        params={"template": "food.batch", "attr.quantity": "7"},
        headers=bearer(dairy),
    )
    assert search.json()["items"] == []


async def test_a_key_reused_within_one_batch_is_refused(client: httpx.AsyncClient) -> None:
    dairy = await create_enterprise(client)
    p = dairy["prefix"]
    items = [keyed(p, "k"), keyed(p, "k"), keyed(p, "k", quantity=7)]
    answer = await client.post(URL, json=items, headers=bearer(dairy))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["accepted"], body["rejected"]) == (2, 1)
    handle = body["results"][0]["handle"]
    assert bare(body["results"][1]) == {"line": 2, "handle": handle, "created": False}
    assert body["results"][2]["error"] == "IdempotencyKeyReused"
    assert "line 1" in body["results"][2]["detail"]


async def test_an_atomic_batch_reusing_a_key_is_refused_whole(client: httpx.AsyncClient) -> None:
    dairy = await create_enterprise(client)
    p = dairy["prefix"]
    first, _ = await send_ndjson(client, dairy, [keyed(p, "k-1")])
    items = [keyed(p, "k-2"), keyed(p, "k-1", quantity=7)]
    for content, headers in (
        (ndjson(items), {**NDJSON, **bearer(dairy)}),
        (orjson.dumps(items), {"Content-Type": "application/json", **bearer(dairy)}),
    ):
        answer = await client.post(URL, content=content, params={"atomic": "true"}, headers=headers)
        assert answer.status_code == 422, answer.text
        body = answer.json()
        assert body["error"] == "BatchRejected"
        assert [(r["line"], r["error"]) for r in body["results"]] == [(2, "IdempotencyKeyReused")]
    retry, summary = await send_ndjson(client, dairy, [keyed(p, "k-1")], atomic="true")
    assert summary == {"accepted": 1, "rejected": 0}
    assert bare(retry[0]) == {"line": 1, "handle": first[0]["handle"], "created": False}
    # Nothing of the refused batches was written: k-2 is still free.
    fresh, _ = await send_ndjson(client, dairy, [keyed(p, "k-2", quantity=9)])
    assert fresh[0]["created"] is True


async def test_keys_are_shared_with_the_single_mint(client: httpx.AsyncClient) -> None:
    dairy = await create_enterprise(client)
    p = dairy["prefix"]
    single = await client.post("/api/v1/identifiers", json=keyed(p, "one"), headers=bearer(dairy))
    assert single.status_code == 201, single.text
    results, _ = await send_ndjson(client, dairy, [keyed(p, "one"), keyed(p, "two")])
    assert bare(results[0]) == {"line": 1, "handle": single.json()["handle"], "created": False}
    refused, _ = await send_ndjson(client, dairy, [keyed(p, "one", quantity=7)])
    assert refused[0]["error"] == "IdempotencyKeyReused"
    # And the other way: a single mint retrying a batch's item, or reusing its key.
    retry = await client.post("/api/v1/identifiers", json=keyed(p, "two"), headers=bearer(dairy))
    assert (retry.status_code, retry.json()["handle"]) == (200, results[1]["handle"])
    other = await client.post(
        "/api/v1/identifiers", json=keyed(p, "two", quantity=7), headers=bearer(dairy)
    )
    assert other.status_code == 422, other.text
    assert other.json()["error"] == "IdempotencyKeyReused"


async def test_keys_across_chunks_carry_their_fingerprint(
    small_client: httpx.AsyncClient,
) -> None:
    dairy = await create_enterprise(small_client)
    p = dairy["prefix"]
    items = [
        keyed(p, "a"),
        keyed(p, "b"),
        keyed(p, "a"),  # a later chunk: the first is committed by now
        keyed(p, "b", quantity=7),
    ]
    results, summary = await send_ndjson(small_client, dairy, items)
    assert summary == {"accepted": 3, "rejected": 1}
    assert bare(results[2]) == {"line": 3, "handle": results[0]["handle"], "created": False}
    assert results[3]["error"] == "IdempotencyKeyReused"


async def test_keys_stored_before_fingerprints_are_still_retries(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    dairy = await create_enterprise(client)
    p = dairy["prefix"]
    first, _ = await send_ndjson(client, dairy, [keyed(p, "old")])
    engine = create_async_engine(settings.database_url)
    try:
        async with engine.begin() as conn:  # as migration 0011 left the keys stored before it
            await conn.execute(text("UPDATE idempotency_keys SET fingerprint = NULL"))
    finally:
        await engine.dispose()
    results, summary = await send_ndjson(client, dairy, [keyed(p, "old", quantity=7)])
    assert summary == {"accepted": 1, "rejected": 0}
    assert bare(results[0]) == {"line": 1, "handle": first[0]["handle"], "created": False}
