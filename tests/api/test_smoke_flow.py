"""The journey of issue 2: operator creates an enterprise, it registers, anyone resolves."""

from __future__ import annotations

import httpx

from tests.conftest import bearer, create_enterprise, url_value


async def test_enterprise_registers_and_anyone_resolves(client: httpx.AsyncClient) -> None:
    dairy = await create_enterprise(client)
    handle = f"{dairy['prefix']}/MILK-2026-000123"

    created = await client.put(
        f"/api/handles/{handle}",
        json={"values": [url_value("https://trace.example.com/milk/000123")]},
        headers=bearer(dairy),
    )
    assert created.status_code == 201
    assert created.json()["handle"] == handle

    resolved = await client.get(f"/api/handles/{handle}")
    assert resolved.status_code == 200
    body = resolved.json()
    assert body["responseCode"] == 1
    assert [v["type"] for v in body["values"]] == ["URL", "HS_ADMIN"]
    assert body["values"][0]["data"] == {
        "format": "string",
        "value": "https://trace.example.com/milk/000123",
    }

    scanned = await client.get(f"/{handle}")
    assert scanned.status_code == 302
    assert scanned.headers["location"] == "https://trace.example.com/milk/000123"
