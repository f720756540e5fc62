"""One idempotency key, one request: a retry gets the first result, another request that
reuses the key is refused (422 IdempotencyKeyReused) instead of silently getting the result
of the first.

Runs on both backends (the ``client`` fixture is parametrised over SQLite and PostgreSQL).
"""

from __future__ import annotations

from typing import Any

import httpx

from app.registry.templates import FOOD_BATCH
from tests.conftest import bearer, create_enterprise, url_value


async def test_a_key_reused_for_other_values_is_refused_on_the_handle_api(
    client: httpx.AsyncClient,
) -> None:
    enterprise = await create_enterprise(client)
    headers = {**bearer(enterprise), "Idempotency-Key": "order-4711"}
    url = f"/api/handles/{enterprise['prefix']}/LOT-"
    first = await client.post(url, json=[url_value("https://x.example/1")], headers=headers)
    retry = await client.post(url, json=[url_value("https://x.example/1")], headers=headers)
    other = await client.post(url, json=[url_value("https://x.example/2")], headers=headers)

    assert first.status_code == 201, first.text
    assert (retry.status_code, retry.json()["handle"]) == (200, first.json()["handle"])
    assert other.status_code == 422, other.text
    assert other.json()["responseCode"] != 1
    assert "order-4711" in other.json()["message"]
    assert first.json()["handle"] in other.json()["message"]
    # Nothing of the refused request was written: the identifier holds the first values.
    again = await client.get(f"/api/handles/{first.json()['handle']}")
    assert again.json()["values"][0]["data"]["value"] == "https://x.example/1"


async def test_a_key_reused_for_other_attributes_is_refused_on_registration(
    client: httpx.AsyncClient,
) -> None:
    enterprise = await create_enterprise(client)
    body: dict[str, Any] = {
        "prefix": enterprise["prefix"],
        "template": "food.batch",
        "attributes": FOOD_BATCH["example"],
        "idempotencyKey": "batch-42",
    }
    changed = {**body, "attributes": {**FOOD_BATCH["example"], "quantity": 1}}
    first = await client.post("/api/v1/identifiers", json=body, headers=bearer(enterprise))
    retry = await client.post("/api/v1/identifiers", json=body, headers=bearer(enterprise))
    other = await client.post("/api/v1/identifiers", json=changed, headers=bearer(enterprise))

    assert first.status_code == 201, first.text
    assert (retry.status_code, retry.json()["handle"]) == (200, first.json()["handle"])
    assert other.status_code == 422, other.text
    assert other.json()["error"] == "IdempotencyKeyReused"
    assert "batch-42" in other.json()["detail"]
    search = await client.get(
        "/api/v1/search",
        params={"template": "food.batch", "attr.quantity": "1"},
        headers=bearer(enterprise),
    )
    assert search.json()["items"] == []
