"""What a node holds survives a restart of its process: identifiers, credentials, allocations."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import OPERATOR, LiveNode

pytestmark = pytest.mark.slow


def create_enterprise(node: LiveNode, name: str) -> dict[str, Any]:
    response = httpx.post(f"{node.url}/api/v1/enterprises", json={"name": name}, headers=OPERATOR)
    assert response.status_code == 201, response.text
    return dict(response.json())


def handle_basic(enterprise: dict[str, Any], secret: str | None = None) -> dict[str, str]:
    """Basic auth the way Handle clients send it: user ``300%3A<prefix>%2FADMIN``."""
    user = quote("300:" + enterprise["adminHandle"], safe="")
    password = enterprise["secret"] if secret is None else secret
    encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


def bearer(enterprise: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {enterprise['token']}"}


def test_records_and_credentials_survive_a_restart(live_node: LiveNode) -> None:
    dairy = create_enterprise(live_node, "Yili Dairy")
    handle = f"{dairy['prefix']}/MILK-2026-000123"
    api = f"{live_node.url}/api/handles/{handle}"
    values = [
        {"index": 1, "type": "URL", "data": "https://trace.example.com/milk/000123"},
        {"index": 2, "type": "EMAIL", "data": "qa@yili.example", "ttl": 3600},
        {"index": 3, "type": "SUPPLIER_COST", "data": "4.20 CNY", "permissions": "1100"},
    ]
    created = httpx.put(api, json={"values": values}, headers=handle_basic(dairy))
    assert created.status_code == 201, created.text

    public_before = httpx.get(api)
    owner_before = httpx.get(api, headers=bearer(dairy))
    assert public_before.status_code == owner_before.status_code == 200
    assert [v["index"] for v in public_before.json()["values"]] == [1, 2, 100]
    assert [v["index"] for v in owner_before.json()["values"]] == [1, 2, 3, 100]

    live_node.stop()
    live_node.start()

    # Same values, same timestamps, same visibility: anyone sees the public ones ...
    public_after = httpx.get(api)
    assert public_after.status_code == 200
    assert public_after.json() == public_before.json()
    # ... and the owner (by bearer token and by Handle Basic auth) the restricted one too.
    assert httpx.get(api, headers=bearer(dairy)).json() == owner_before.json()
    assert httpx.get(api, headers=handle_basic(dairy)).json() == owner_before.json()
    scanned = httpx.get(f"{live_node.url}/{handle}")
    assert scanned.status_code == 302
    assert scanned.headers["location"] == "https://trace.example.com/milk/000123"

    # Repeating the original write after the restart changes nothing, timestamps included.
    repeated = httpx.put(api, json={"values": values}, headers=handle_basic(dairy))
    assert repeated.status_code == 200, repeated.text
    assert httpx.get(api, headers=bearer(dairy)).json() == owner_before.json()

    # The secret still opens the admin identity for a write (Basic, as Handle clients send it) ...
    changed = httpx.put(
        api,
        params={"index": "2"},
        json={"values": [{"index": 2, "type": "EMAIL", "data": "recall@yili.example"}]},
        headers=handle_basic(dairy),
    )
    assert changed.status_code == 200, changed.text
    after_change = {v["index"]: v for v in httpx.get(api).json()["values"]}
    assert after_change[2]["data"] == {"format": "string", "value": "recall@yili.example"}
    before = {v["index"]: v for v in public_before.json()["values"]}
    assert after_change[1] == before[1]
    assert after_change[100] == before[100]

    # ... and so does the bearer token.
    removed = httpx.delete(api, params={"index": "3"}, headers=bearer(dairy))
    assert removed.status_code == 200, removed.text
    owner_view = httpx.get(api, headers=bearer(dairy)).json()
    assert [v["index"] for v in owner_view["values"]] == [1, 2, 100]

    # A wrong secret is still refused.
    refused = httpx.put(api, json={"values": values}, headers=handle_basic(dairy, "wrong"))
    assert refused.status_code == 401
    assert refused.json()["responseCode"] == 402


def test_mint_idempotency_and_allocations_survive_a_restart(live_node: LiveNode) -> None:
    dairy = create_enterprise(live_node, "Yili Dairy")
    mint_url = f"{live_node.url}/api/handles/{dairy['prefix']}/BATCH-"
    body = {"values": [{"index": 1, "type": "URL", "data": "https://trace.example.com/b"}]}
    headers = {**bearer(dairy), "Idempotency-Key": "batch-2026-11-26"}
    minted = httpx.post(mint_url, json=body, headers=headers)
    assert minted.status_code == 201, minted.text

    live_node.stop()
    live_node.start()

    # A client retrying after the node came back gets the identifier minted the first time.
    retried = httpx.post(mint_url, json=body, headers=headers)
    assert retried.status_code == 200, retried.text
    assert retried.json()["handle"] == minted.json()["handle"]
    assert retried.json()["values"] == minted.json()["values"]

    # The next enterprise gets a new prefix, not the one already allocated.
    second = create_enterprise(live_node, "Mengniu")
    assert second["prefix"] != dairy["prefix"]
    listed = httpx.get(f"{live_node.url}/api/v1/enterprises", headers=OPERATOR)
    assert listed.status_code == 200
    assert {e["prefix"] for e in listed.json()} == {dairy["prefix"], second["prefix"]}
