"""Provisioning keys: created by the enterprise, secret shown once, listed, revoked."""

from __future__ import annotations

import httpx

from tests.conftest import OPERATOR, bearer, create_enterprise


async def test_create_list_and_revoke(client: httpx.AsyncClient) -> None:
    plant = await create_enterprise(client)
    url = f"/api/v1/enterprises/{plant['prefix']}/provisioning-keys"

    created = await client.post(
        url, json={"name": "line 3 adapters", "template": "device"}, headers=bearer(plant)
    )
    assert created.status_code == 201, created.text
    issued = created.json()
    assert issued["key"].startswith("pk_")
    assert len(issued["secret"]) >= 24
    assert issued["revokedAt"] is None

    listed = await client.get(url, headers=bearer(plant))
    assert listed.status_code == 200
    [shown] = listed.json()
    assert shown["key"] == issued["key"]
    assert shown["name"] == "line 3 adapters"
    assert "secret" not in shown  # shown once, at creation

    revoked = await client.delete(f"{url}/{issued['key']}", headers=bearer(plant))
    assert revoked.status_code == 204
    [after] = (await client.get(url, headers=bearer(plant))).json()
    assert after["revokedAt"] is not None


async def test_only_the_enterprise_or_operator(client: httpx.AsyncClient) -> None:
    plant = await create_enterprise(client, "Plant")
    rival = await create_enterprise(client, "Rival")
    url = f"/api/v1/enterprises/{plant['prefix']}/provisioning-keys"

    anonymous = await client.post(url, json={"name": "k"})
    assert anonymous.status_code == 401
    other = await client.post(url, json={"name": "k"}, headers=bearer(rival))
    assert other.status_code == 403
    assert other.json()["error"] == "PermissionDenied"
    by_operator = await client.post(url, json={"name": "k"}, headers=OPERATOR)
    assert by_operator.status_code == 201


async def test_bad_requests_name_the_problem(client: httpx.AsyncClient) -> None:
    plant = await create_enterprise(client)
    url = f"/api/v1/enterprises/{plant['prefix']}/provisioning-keys"

    template = await client.post(url, json={"name": "k", "template": "food"}, headers=bearer(plant))
    assert template.status_code == 400
    assert "template 'food' is unknown" in template.json()["detail"]

    unknown_key = await client.delete(f"{url}/pk_nope", headers=bearer(plant))
    assert unknown_key.status_code == 404
    assert unknown_key.json()["error"] == "ProvisioningKeyNotFound"

    nobody = await client.post(
        "/api/v1/enterprises/88.999.77/provisioning-keys", json={"name": "k"}, headers=OPERATOR
    )
    assert nobody.status_code == 404
    assert nobody.json()["error"] == "EnterpriseNotFound"
