"""``/api/v1/enterprises``: allocating prefixes, issuing credentials, disabling, rotating."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from tests.conftest import OPERATOR, bearer, create_enterprise, url_value

ENTERPRISES = "/api/v1/enterprises"
PUBLIC_FIELDS = {"name", "prefix", "prefixes", "adminHandle", "status", "createdAt"}


# --- helpers ---


async def post_enterprise(client: httpx.AsyncClient, **body: Any) -> httpx.Response:
    return await client.post(ENTERPRISES, json=body, headers=OPERATOR)


async def show(client: httpx.AsyncClient, prefix: str) -> httpx.Response:
    return await client.get(f"{ENTERPRISES}/{prefix}", headers=OPERATOR)


async def set_status(client: httpx.AsyncClient, prefix: str, status: str) -> httpx.Response:
    return await client.patch(f"{ENTERPRISES}/{prefix}", json={"status": status}, headers=OPERATOR)


async def rotate(client: httpx.AsyncClient, prefix: str) -> dict[str, Any]:
    answer = await client.post(f"{ENTERPRISES}/{prefix}/credentials", headers=OPERATOR)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def handle_client_basic(prefix: str, secret: str) -> dict[str, str]:
    user = f"300%3A{prefix}%2FADMIN"
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}


async def write(
    client: httpx.AsyncClient, enterprise: dict[str, Any], headers: dict[str, str]
) -> httpx.Response:
    """Register (or replace) one identifier of ``enterprise`` with these credentials."""
    return await client.put(
        f"/api/handles/{enterprise['prefix']}/MILK-1",
        json={"values": [url_value("https://trace.example.com/milk/1")]},
        headers=headers,
    )


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    body = response.json()
    assert body.get("error"), body
    assert body.get("detail"), body
    return dict(body)


async def database_text(app: Any) -> str:
    """Every row of every table of the node's database, as one text."""
    chunks = []
    async with app.state.node.database.read_session() as session:
        for table in ("enterprises", "prefixes", "credentials", "handles", "idempotency_keys"):
            rows = await session.execute(text(f"SELECT * FROM {table}"))
            chunks.extend(repr(tuple(row)) for row in rows)
    return "\n".join(chunks)


async def credential_rows(app: Any) -> list[dict[str, Any]]:
    async with app.state.node.database.read_session() as session:
        rows = await session.execute(text("SELECT * FROM credentials"))
        return [dict(row._mapping) for row in rows]


# --- allocation ---


async def test_prefixes_are_allocated_in_order(client: httpx.AsyncClient) -> None:
    first = await create_enterprise(client, name="Yili Dairy")
    second = await create_enterprise(client, name="Mengniu Dairy")
    assert (first["prefix"], second["prefix"]) == ("88.999.1", "88.999.2")
    assert first["prefixes"] == ["88.999.1"]
    assert first["adminHandle"] == "88.999.1/ADMIN"
    assert first["status"] == "active"
    assert first["name"] == "Yili Dairy"


async def test_explicit_prefix_keeps_leading_zeros(client: httpx.AsyncClient) -> None:
    made = await create_enterprise(client, prefix="0042")
    assert made["prefix"] == "88.999.0042"
    assert (await show(client, "88.999.0042")).json()["prefix"] == "88.999.0042"
    assert (await show(client, "88.999.42")).status_code == 404


async def test_explicit_prefix_may_name_the_node_prefix(client: httpx.AsyncClient) -> None:
    made = await create_enterprise(client, prefix="88.999.7")
    assert made["prefix"] == "88.999.7"


async def test_explicit_letters_are_normalised_to_upper_case(client: httpx.AsyncClient) -> None:
    made = await create_enterprise(client, prefix="yili")
    assert made["prefix"] == "88.999.YILI"
    assert made["adminHandle"] == "88.999.YILI/ADMIN"


async def test_taken_prefix_is_409(client: httpx.AsyncClient) -> None:
    await create_enterprise(client, name="Yili Dairy", prefix="0042")
    answer = await post_enterprise(client, name="Copycat", prefix="0042")
    assert error_of(answer, 409)["error"] == "PrefixTaken"
    assert "88.999.0042" in answer.json()["detail"]
    shown = await show(client, "88.999.0042")
    assert shown.json()["name"] == "Yili Dairy"


async def test_refused_enterprise_leaves_nothing_behind(client: httpx.AsyncClient) -> None:
    await create_enterprise(client, name="Yili Dairy")  # 88.999.1
    answer = await post_enterprise(client, name="Copycat", prefix="1")
    error_of(answer, 409)
    listed = await client.get(ENTERPRISES, headers=OPERATOR)
    assert listed.status_code == 200, listed.text
    assert [e["name"] for e in listed.json()] == ["Yili Dairy"]


async def test_explicit_prefix_taken_by_automatic_allocation(client: httpx.AsyncClient) -> None:
    await create_enterprise(client)  # 88.999.1
    error_of(await post_enterprise(client, name="Copycat", prefix="1"), 409)
    error_of(await post_enterprise(client, name="Copycat", prefix="88.999.1"), 409)


@pytest.mark.parametrize(
    "segment",
    ["1.2", "has space", "", "x" * 17, "ä", "88.999", "a/b", "88.999.1.2"],
    ids=["dot", "space", "empty", "too-long", "non-ascii", "node-prefix", "slash", "nested"],
)
async def test_bad_segment_is_a_clear_client_error(client: httpx.AsyncClient, segment: str) -> None:
    answer = await post_enterprise(client, name="Yili Dairy", prefix=segment)
    assert 400 <= answer.status_code < 500, answer.text
    body = error_of(answer, answer.status_code)
    assert "segment" in body["detail"]
    assert (await show(client, "88.999.1")).status_code == 404


@pytest.mark.parametrize(
    "body",
    [{}, {"name": ""}, {"name": "   "}, {"name": "x" * 201}, {"name": 5}],
    ids=["missing", "empty", "blank", "too-long", "not-text"],
)
async def test_bad_name_is_a_client_error(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    answer = await client.post(ENTERPRISES, json=body, headers=OPERATOR)
    assert 400 <= answer.status_code < 500, answer.text
    error_of(answer, answer.status_code)
    assert (await show(client, "88.999.1")).status_code == 404


# --- credentials: shown once, stored hashed ---


async def test_secret_and_token_are_shown_once(client: httpx.AsyncClient) -> None:
    made = await create_enterprise(client)
    assert made["secret"]
    assert made["token"]
    assert made["secret"] != made["token"]
    one = await show(client, made["prefix"])
    assert set(one.json()) == PUBLIC_FIELDS
    mine = await client.get(f"{ENTERPRISES}/{made['prefix']}", headers=bearer(made))
    assert set(mine.json()) == PUBLIC_FIELDS
    listed = await client.get(ENTERPRISES, headers=OPERATOR)
    assert listed.status_code == 200, listed.text
    assert [set(e) for e in listed.json()] == [PUBLIC_FIELDS]
    for answer in (one, mine, listed):
        assert made["secret"] not in answer.text
        assert made["token"] not in answer.text


async def test_credentials_are_not_stored_in_plain_text(
    app: Any, client: httpx.AsyncClient
) -> None:
    made = await create_enterprise(client)
    rotated = await rotate(client, made["prefix"])
    stored = await database_text(app)
    for secret in (made["secret"], made["token"], rotated["secret"], rotated["token"]):
        assert secret not in stored
    rows = await credential_rows(app)
    assert len(rows) == 4  # two revoked, two active
    hashes = {row["secret_hash"] for row in rows}
    assert len(hashes) == 4
    assert all(h and len(h) >= 32 for h in hashes)


async def test_credentials_are_distinct_per_enterprise(client: httpx.AsyncClient) -> None:
    first = await create_enterprise(client, name="Yili Dairy")
    second = await create_enterprise(client, name="Mengniu Dairy")
    assert first["secret"] != second["secret"]
    assert first["token"] != second["token"]


# --- identity records ---


async def test_admin_identity_resolves_with_hs_admin(client: httpx.AsyncClient) -> None:
    made = await create_enterprise(client)
    answer = await client.get(f"/api/handles/{made['prefix']}/ADMIN")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["responseCode"] == 1
    admins = [v for v in body["values"] if v["type"] == "HS_ADMIN"]
    assert admins, body
    assert admins[0]["data"]["format"] == "admin"
    assert admins[0]["data"]["value"]["handle"] == f"{made['prefix']}/ADMIN"


async def test_prefix_record_resolves(client: httpx.AsyncClient) -> None:
    made = await create_enterprise(client)
    answer = await client.get(f"/api/handles/0.NA/{made['prefix']}")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["responseCode"] == 1
    assert body["handle"] == f"0.NA/{made['prefix']}"
    admins = {v["data"]["value"]["handle"] for v in body["values"] if v["type"] == "HS_ADMIN"}
    assert f"{made['prefix']}/ADMIN" in admins


async def test_explicit_prefix_gets_identity_records(client: httpx.AsyncClient) -> None:
    await create_enterprise(client, prefix="0042")
    for handle in ("88.999.0042/ADMIN", "0.NA/88.999.0042"):
        answer = await client.get(f"/api/handles/{handle}")
        assert answer.status_code == 200, answer.text


async def test_new_enterprise_writes_with_both_credentials(client: httpx.AsyncClient) -> None:
    made = await create_enterprise(client)
    assert (await write(client, made, bearer(made))).status_code == 201
    basic = handle_client_basic(made["prefix"], made["secret"])
    assert (await write(client, made, basic)).status_code == 200


# --- list and show ---


async def test_list_every_enterprise(client: httpx.AsyncClient) -> None:
    await create_enterprise(client, name="Yili Dairy")
    await create_enterprise(client, name="Mengniu Dairy", prefix="0042")
    listed = await client.get(ENTERPRISES, headers=OPERATOR)
    assert listed.status_code == 200, listed.text
    assert [(e["name"], e["prefix"], e["status"]) for e in listed.json()] == [
        ("Yili Dairy", "88.999.1", "active"),
        ("Mengniu Dairy", "88.999.0042", "active"),
    ]


async def test_list_is_empty_on_a_new_node(client: httpx.AsyncClient) -> None:
    listed = await client.get(ENTERPRISES, headers=OPERATOR)
    assert listed.status_code == 200, listed.text
    assert listed.json() == []


async def test_show_one(client: httpx.AsyncClient) -> None:
    made = await create_enterprise(client)
    answer = await show(client, made["prefix"])
    assert answer.status_code == 200, answer.text
    one = answer.json()
    assert {k: one[k] for k in PUBLIC_FIELDS} == {k: made[k] for k in PUBLIC_FIELDS}


async def test_show_is_case_insensitive(client: httpx.AsyncClient) -> None:
    await create_enterprise(client, prefix="yili")
    answer = await show(client, "88.999.yili")
    assert answer.status_code == 200, answer.text
    assert answer.json()["prefix"] == "88.999.YILI"


async def test_show_unknown_is_404(client: httpx.AsyncClient) -> None:
    assert error_of(await show(client, "88.999.9"), 404)["error"] == "EnterpriseNotFound"


# --- disable and enable ---


async def test_disable_and_enable(client: httpx.AsyncClient) -> None:
    made = await create_enterprise(client)
    assert (await write(client, made, bearer(made))).status_code == 201

    disabled = await set_status(client, made["prefix"], "disabled")
    assert disabled.status_code == 200, disabled.text
    assert disabled.json()["status"] == "disabled"
    assert (await show(client, made["prefix"])).json()["status"] == "disabled"
    assert (await write(client, made, bearer(made))).status_code == 403
    resolved = await client.get(f"/api/handles/{made['prefix']}/MILK-1")
    assert resolved.status_code == 200

    enabled = await set_status(client, made["prefix"], "active")
    assert enabled.status_code == 200, enabled.text
    assert enabled.json()["status"] == "active"
    assert (await show(client, made["prefix"])).json()["status"] == "active"
    assert (await write(client, made, bearer(made))).status_code == 200


async def test_disabling_one_enterprise_leaves_the_others(client: httpx.AsyncClient) -> None:
    first = await create_enterprise(client, name="Yili Dairy")
    second = await create_enterprise(client, name="Mengniu Dairy")
    assert (await set_status(client, first["prefix"], "disabled")).status_code == 200
    assert (await show(client, second["prefix"])).json()["status"] == "active"
    assert (await write(client, second, bearer(second))).status_code == 201


async def test_unknown_status_is_refused(client: httpx.AsyncClient) -> None:
    made = await create_enterprise(client)
    answer = await set_status(client, made["prefix"], "deleted")
    assert 400 <= answer.status_code < 500, answer.text
    error_of(answer, answer.status_code)
    assert (await show(client, made["prefix"])).json()["status"] == "active"


async def test_patch_unknown_enterprise_is_404(client: httpx.AsyncClient) -> None:
    answer = await set_status(client, "88.999.9", "disabled")
    assert error_of(answer, 404)["error"] == "EnterpriseNotFound"


# --- credential rotation ---


async def test_rotation_revokes_the_old_secret_and_token(client: httpx.AsyncClient) -> None:
    made = await create_enterprise(client)
    fresh = await rotate(client, made["prefix"])
    assert fresh["prefix"] == made["prefix"]
    assert fresh["secret"] != made["secret"]
    assert fresh["token"] != made["token"]

    old_basic = handle_client_basic(made["prefix"], made["secret"])
    for old in (bearer(made), old_basic):
        refused = await write(client, made, old)
        assert refused.status_code == 401, refused.text
        assert refused.json()["responseCode"] == 402
    assert (
        await client.get(f"{ENTERPRISES}/{made['prefix']}", headers=bearer(made))
    ).status_code == 401

    assert (await write(client, made, bearer(fresh))).status_code == 201
    new_basic = handle_client_basic(made["prefix"], fresh["secret"])
    assert (await write(client, made, new_basic)).status_code == 200


async def test_rotation_leaves_other_enterprises_alone(client: httpx.AsyncClient) -> None:
    first = await create_enterprise(client, name="Yili Dairy")
    second = await create_enterprise(client, name="Mengniu Dairy")
    await rotate(client, first["prefix"])
    assert (await write(client, second, bearer(second))).status_code == 201
    basic = handle_client_basic(second["prefix"], second["secret"])
    assert (await write(client, second, basic)).status_code == 200


async def test_second_rotation_revokes_the_first(client: httpx.AsyncClient) -> None:
    made = await create_enterprise(client)
    first = await rotate(client, made["prefix"])
    second = await rotate(client, made["prefix"])
    assert (await write(client, made, bearer(first))).status_code == 401
    assert (await write(client, made, bearer(second))).status_code == 201


async def test_rotate_unknown_enterprise_is_404(client: httpx.AsyncClient) -> None:
    answer = await client.post(f"{ENTERPRISES}/88.999.9/credentials", headers=OPERATOR)
    assert error_of(answer, 404)["error"] == "EnterpriseNotFound"
