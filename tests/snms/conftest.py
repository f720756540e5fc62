"""Factories for the SNMS facade tests: an enterprise with an SNMS login, and its token."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import bearer, create_enterprise

PASSWORD = "milk-line-3-pass"


async def snms_user(
    client: httpx.AsyncClient, enterprise: dict[str, Any], username: str
) -> dict[str, str]:
    created = await client.post(
        f"/api/v1/enterprises/{enterprise['prefix']}/users",
        json={"username": username, "password": PASSWORD},
        headers=bearer(enterprise),
    )
    assert created.status_code == 201, created.text
    return {"username": username, "password": PASSWORD}


async def login(client: httpx.AsyncClient, username: str, password: str) -> dict[str, str]:
    answer = await client.post("/identity/token", json={"username": username, "password": password})
    body = answer.json()
    assert answer.status_code == 200
    assert body["status"] == 1, body
    return {"Authorization": f"Bearer {body['data']['token']}"}


@pytest.fixture
async def dairy(client: httpx.AsyncClient) -> dict[str, Any]:
    """An enterprise, an SNMS user of it and the user's token headers (``snms``)."""
    enterprise = await create_enterprise(client, "Yili Dairy")
    user = await snms_user(client, enterprise, "yili-mes")
    return {**enterprise, "snms": await login(client, user["username"], user["password"])}
