"""Graded resolution: grants (grant, use, expire, revoke) and read-only reader tokens."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.api.factories import grant, reader, register, restricted, values_by_index
from tests.conftest import OPERATOR, bearer, create_enterprise, url_value

SECRET = "qa-lead@yili.example"


async def restricted_of(client: httpx.AsyncClient, handle: str, headers: dict[str, str]) -> Any:
    answer = await client.get(f"/api/handles/{handle}", headers=headers)
    assert answer.status_code == 200, answer.text
    return values_by_index(answer.json()).get(2)


@pytest.fixture
async def world(client: httpx.AsyncClient) -> dict[str, Any]:
    owner = await create_enterprise(client, name="Yili Dairy")
    rival = await create_enterprise(client, name="Mengniu")
    values = [url_value("https://t.example/1"), restricted(2, "EMAIL", SECRET)]
    return {
        "owner": owner,
        "rival": rival,
        "milk": await register(client, owner, "MILK-1", values),
        "cheese": await register(client, owner, "CHEESE-1", values),
    }


async def test_a_handle_grant_lets_the_grantee_read_that_identifier_only(
    client: httpx.AsyncClient, world: dict[str, Any]
) -> None:
    rival = bearer(world["rival"])
    assert await restricted_of(client, world["milk"], rival) is None
    made = await grant(client, world["owner"], world["rival"]["prefix"], world["milk"])
    assert made["granteeKind"] == "enterprise"
    assert made["expiresAt"] is None
    assert await restricted_of(client, world["milk"], rival) == SECRET
    assert await restricted_of(client, world["cheese"], rival) is None


async def test_a_prefix_grant_covers_every_identifier_under_it(
    client: httpx.AsyncClient, world: dict[str, Any]
) -> None:
    await grant(client, world["owner"], world["rival"]["prefix"], world["owner"]["prefix"])
    for handle in (world["milk"], world["cheese"]):
        assert await restricted_of(client, handle, bearer(world["rival"])) == SECRET


async def test_a_grant_expires(client: httpx.AsyncClient, world: dict[str, Any]) -> None:
    expires = datetime.now(UTC) + timedelta(seconds=1.5)
    await grant(
        client,
        world["owner"],
        world["rival"]["prefix"],
        world["milk"],
        expiresAt=expires.isoformat(),
    )
    assert await restricted_of(client, world["milk"], bearer(world["rival"])) == SECRET
    await asyncio.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.2)
    assert await restricted_of(client, world["milk"], bearer(world["rival"])) is None


async def test_revoking_takes_effect_at_once(
    client: httpx.AsyncClient, world: dict[str, Any]
) -> None:
    made = await grant(client, world["owner"], world["rival"]["prefix"], world["milk"])
    listed = await client.get("/api/v1/grants", headers=bearer(world["owner"]))
    assert [g["id"] for g in listed.json()] == [made["id"]]
    assert await restricted_of(client, world["milk"], bearer(world["rival"])) == SECRET

    other = await client.delete(f"/api/v1/grants/{made['id']}", headers=bearer(world["rival"]))
    assert other.status_code == 404  # only the granter revokes
    revoked = await client.delete(f"/api/v1/grants/{made['id']}", headers=bearer(world["owner"]))
    assert revoked.status_code == 204
    assert await restricted_of(client, world["milk"], bearer(world["rival"])) is None
    assert (await client.get("/api/v1/grants", headers=bearer(world["owner"]))).json() == []
    again = await client.delete(f"/api/v1/grants/{made['id']}", headers=bearer(world["owner"]))
    assert again.status_code == 404


async def test_the_operator_sees_and_revokes_every_grant(
    client: httpx.AsyncClient, world: dict[str, Any]
) -> None:
    made = await grant(client, world["owner"], world["rival"]["prefix"], world["milk"])
    listed = await client.get("/api/v1/grants", headers=OPERATOR)
    assert [g["id"] for g in listed.json()] == [made["id"]]
    assert (await client.get("/api/v1/grants", headers=bearer(world["rival"]))).json() == []
    revoked = await client.delete(f"/api/v1/grants/{made['id']}", headers=OPERATOR)
    assert revoked.status_code == 204
    assert await restricted_of(client, world["milk"], bearer(world["rival"])) is None


async def test_a_reader_token_reads_public_values_and_what_it_was_granted(
    client: httpx.AsyncClient, world: dict[str, Any]
) -> None:
    issued = await reader(client, world["owner"], "Market regulator")
    assert issued["id"].startswith("rt_")
    assert issued["token"]
    as_reader = {"Authorization": f"Bearer {issued['token']}"}
    assert await restricted_of(client, world["milk"], as_reader) is None
    await grant(client, world["owner"], issued["id"], world["milk"])
    assert await restricted_of(client, world["milk"], as_reader) == SECRET
    assert await restricted_of(client, world["cheese"], as_reader) is None

    listed = await client.get("/api/v1/reader-tokens", headers=bearer(world["owner"]))
    assert [(r["id"], r["name"]) for r in listed.json()] == [(issued["id"], "Market regulator")]
    assert "token" not in listed.json()[0]


async def test_another_enterprise_may_grant_to_the_same_reader_token(
    client: httpx.AsyncClient, world: dict[str, Any]
) -> None:
    """One regulator, one token: every enterprise it inspects grants to its id."""
    issued = await reader(client, world["owner"], "Regulator")
    theirs = await register(
        client, world["rival"], "YOGURT-1", [restricted(2, "EMAIL", "qa@mengniu.example")]
    )
    await grant(client, world["rival"], issued["id"], theirs)
    as_reader = {"Authorization": f"Bearer {issued['token']}"}
    assert await restricted_of(client, theirs, as_reader) == "qa@mengniu.example"


async def test_a_reader_token_may_not_write(
    client: httpx.AsyncClient, world: dict[str, Any]
) -> None:
    issued = await reader(client, world["owner"], "Customer")
    as_reader = {"Authorization": f"Bearer {issued['token']}"}
    body = {"values": [url_value("https://evil.example")]}
    prefix = world["owner"]["prefix"]
    for method, url, payload in [
        ("PUT", f"/api/handles/{world['milk']}", body),
        ("PUT", f"/api/handles/{prefix}/NEW", body),
        ("POST", f"/api/handles/{prefix}", body),
        ("DELETE", f"/api/handles/{world['milk']}", None),
    ]:
        answer = await client.request(method, url, json=payload, headers=as_reader)
        assert answer.status_code == 403, (method, url, answer.text)
        assert answer.json()["responseCode"] == 401
    for method, url, payload in [
        ("POST", "/api/v1/grants", {"grantee": world["rival"]["prefix"], "scope": prefix}),
        ("POST", "/api/v1/reader-tokens", {"name": "mine"}),
        ("GET", "/api/v1/grants", None),
        ("POST", f"/api/v1/enterprises/{prefix}/credentials", None),
        ("POST", "/api/v1/enterprises", {"name": "Fake"}),
    ]:
        answer = await client.request(method, url, json=payload, headers=as_reader)
        assert answer.status_code == 403, (method, url, answer.text)
    unchanged = await client.get(f"/api/handles/{world['milk']}")
    assert values_by_index(unchanged.json())[1] == "https://t.example/1"


async def test_a_revoked_reader_token_stops_authenticating(
    client: httpx.AsyncClient, world: dict[str, Any]
) -> None:
    issued = await reader(client, world["owner"], "Customer")
    as_reader = {"Authorization": f"Bearer {issued['token']}"}
    await grant(client, world["owner"], issued["id"], world["milk"])
    revoked = await client.delete(
        f"/api/v1/reader-tokens/{issued['id']}", headers=bearer(world["owner"])
    )
    assert revoked.status_code == 204
    answer = await client.get(f"/api/handles/{world['milk']}", headers=as_reader)
    assert answer.status_code == 401
    assert answer.json()["responseCode"] == 402
    listed = await client.get("/api/v1/reader-tokens", headers=bearer(world["owner"]))
    assert listed.json() == []
    grants = await client.get("/api/v1/grants", headers=bearer(world["owner"]))
    assert grants.json() == []  # its grants went with it
    foreign = await client.delete(
        f"/api/v1/reader-tokens/{issued['id']}", headers=bearer(world["rival"])
    )
    assert foreign.status_code == 404


async def test_bad_grants_are_refused_with_the_reason(
    client: httpx.AsyncClient, world: dict[str, Any]
) -> None:
    owner, rival = world["owner"], world["rival"]
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    cases: list[tuple[dict[str, Any], dict[str, str], int, str]] = [
        ({"grantee": rival["prefix"], "scope": rival["prefix"]}, bearer(owner), 403, "scope"),
        ({"grantee": rival["prefix"], "scope": "88.999.77/X"}, bearer(owner), 403, "scope"),
        ({"grantee": "88.999.77", "scope": owner["prefix"]}, bearer(owner), 400, "88.999.77"),
        ({"grantee": "rt_nope", "scope": owner["prefix"]}, bearer(owner), 400, "rt_nope"),
        ({"grantee": "not a prefix", "scope": owner["prefix"]}, bearer(owner), 400, "grantee"),
        ({"grantee": owner["prefix"], "scope": owner["prefix"]}, bearer(owner), 400, "own"),
        ({"grantee": rival["prefix"], "scope": "bad scope/"}, bearer(owner), 400, "scope"),
        (
            {"grantee": rival["prefix"], "scope": owner["prefix"], "expiresAt": past},
            bearer(owner),
            400,
            "expiresAt",
        ),
        (
            {"grantee": rival["prefix"], "scope": owner["prefix"], "expiresAt": "2030-01-01T00:00"},
            bearer(owner),
            422,
            "expiresAt",
        ),
        ({"grantee": rival["prefix"], "scope": owner["prefix"]}, {}, 401, "credentials"),
        ({"grantee": rival["prefix"], "scope": owner["prefix"]}, OPERATOR, 403, "enterprise"),
    ]
    for payload, headers, status, word in cases:
        answer = await client.post("/api/v1/grants", json=payload, headers=headers)
        assert answer.status_code == status, (payload, answer.text)
        assert word in answer.json()["detail"], (payload, answer.json())
    listed = await client.get("/api/v1/grants", headers=OPERATOR)
    assert listed.json() == []


async def test_a_disabled_enterprise_reads_nothing_granted_until_enabled_again(
    client: httpx.AsyncClient, world: dict[str, Any]
) -> None:
    rival = bearer(world["rival"])
    await grant(client, world["owner"], world["rival"]["prefix"], world["owner"]["prefix"])
    assert await restricted_of(client, world["milk"], rival) == SECRET

    status = f"/api/v1/enterprises/{world['rival']['prefix']}"
    disabled = await client.patch(status, json={"status": "disabled"}, headers=OPERATOR)
    assert disabled.status_code == 200, disabled.text
    assert await restricted_of(client, world["milk"], rival) is None
    enabled = await client.patch(status, json={"status": "active"}, headers=OPERATOR)
    assert enabled.status_code == 200, enabled.text
    assert await restricted_of(client, world["milk"], rival) == SECRET
