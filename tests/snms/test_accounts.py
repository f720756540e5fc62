"""SNMS logins: users an enterprise makes, the two login forms, 24 h tokens."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from app.registry import clock
from app.settings import Settings
from app.snms.accounts import salted_by_date
from app.storage.models import SnmsUser
from tests.conftest import OPERATOR, bearer, create_enterprise
from tests.snms.conftest import PASSWORD, login, snms_user


def sha256hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def china_date(moment: datetime) -> str:
    return (moment + timedelta(hours=8)).strftime("%Y-%m-%d")


def hashed_login(plain_sha256: str, day: str) -> str:
    """What an SNMS client sends to /identity/token/v1."""
    return sha256hex(plain_sha256 + day)


async def token_answer(client: httpx.AsyncClient, path: str, user: str, password: str) -> Any:
    answer = await client.post(path, json={"username": user, "password": password})
    assert answer.status_code == 200
    return answer.json()


def test_the_documented_hashed_password_example() -> None:
    """The docs' example value (their note says '12345'; the value is that of '123456')."""
    day = datetime(2019, 8, 15, 12, tzinfo=UTC)
    expected = "58e2c92c46485fdbc35fdcd0814d6c0f000cad5aa156848ca5edaf29406b7661"
    assert expected in salted_by_date(sha256hex("123456"), day)


async def test_an_enterprise_manages_its_users(client: httpx.AsyncClient) -> None:
    dairy = await create_enterprise(client, "Yili Dairy")
    other = await create_enterprise(client, "Mengniu")
    users = f"/api/v1/enterprises/{dairy['prefix']}/users"
    await snms_user(client, dairy, "yili-mes")
    by_operator = await client.post(
        users,
        json={"username": "88.608.24061301/App_scxt0716", "password": PASSWORD},
        headers=OPERATOR,
    )
    assert by_operator.status_code == 201
    foreign = await client.post(
        users, json={"username": "intruder", "password": PASSWORD}, headers=bearer(other)
    )
    assert foreign.status_code == 403
    assert (await client.get(users, headers=bearer(other))).status_code == 403
    taken = await client.post(
        f"/api/v1/enterprises/{other['prefix']}/users",
        json={"username": "yili-mes", "password": PASSWORD},
        headers=bearer(other),
    )
    assert taken.status_code == 409
    short = await client.post(
        users, json={"username": "weak", "password": "123456"}, headers=bearer(dairy)
    )
    assert short.status_code == 400
    assert "password" in short.json()["detail"]
    listed = (await client.get(users, headers=bearer(dairy))).json()
    assert [u["username"] for u in listed] == ["yili-mes", "88.608.24061301/App_scxt0716"]
    assert not any(u["disabled"] for u in listed)


async def test_passwords_are_stored_with_a_slow_salted_hash(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    dairy = await create_enterprise(client)
    await snms_user(client, dairy, "yili-mes")
    await snms_user(client, await create_enterprise(client, "Other"), "other-mes")
    engine = create_async_engine(settings.database_url)
    async with engine.connect() as conn:
        rows = (await conn.execute(select(SnmsUser.password_hash))).scalars().all()
    await engine.dispose()
    assert all(r.startswith("scrypt$") and PASSWORD not in r for r in rows)
    assert rows[0] != rows[1]  # salted: the same password hashes differently


async def test_plain_login_and_its_failures(client: httpx.AsyncClient) -> None:
    dairy = await create_enterprise(client)
    await snms_user(client, dairy, "yili-mes")
    ok = await token_answer(client, "/identity/token", "yili-mes", PASSWORD)
    assert ok["status"] == 1
    assert ok["message"] == "success"
    assert ok["data"]["token"]
    for user, password in (("yili-mes", "wrong-password!"), ("nobody", PASSWORD)):
        failed = await token_answer(client, "/identity/token", user, password)
        assert failed == {"status": -2, "message": "用户名/密码错误！", "data": None}


async def test_hashed_login_takes_the_date_in_china(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    dairy = await create_enterprise(client)
    await snms_user(client, dairy, "yili-mes")
    # 20:30 UTC is already the next day in China.
    moment = datetime(2026, 3, 1, 20, 30, tzinfo=UTC)
    monkeypatch.setattr(clock, "now", lambda: moment)
    china_today = china_date(moment)
    assert china_today == "2026-03-02"
    path = "/identity/token/v1"
    for day, status in (
        ("2026-03-02", 1),
        ("2026-03-01", 1),
        ("2026-03-03", 1),
        ("2026-02-27", -2),
    ):
        sent = hashed_login(sha256hex(PASSWORD), day)
        assert (await token_answer(client, path, "yili-mes", sent))["status"] == status, day
    plain = await token_answer(client, path, "yili-mes", PASSWORD)
    assert plain["status"] == -2


async def test_admin_logs_in_with_the_enterprise_secret(client: httpx.AsyncClient) -> None:
    dairy = await create_enterprise(client)
    admin = f"{dairy['prefix']}/ADMIN"
    plain = await token_answer(client, "/identity/token", admin, dairy["secret"])
    assert plain["status"] == 1
    day = china_date(datetime.now(UTC))
    hashed = hashed_login(sha256hex(dairy["secret"]), day)
    assert (await token_answer(client, "/identity/token/v1", admin, hashed))["status"] == 1
    other = await create_enterprise(client, "Other")
    wrong = await token_answer(client, "/identity/token", admin, other["secret"])
    assert wrong["status"] == -2


async def test_tokens_last_24_hours(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    dairy = await create_enterprise(client)
    await snms_user(client, dairy, "yili-mes")
    start = datetime.now(UTC)
    monkeypatch.setattr(clock, "now", lambda: start)
    headers = await login(client, "yili-mes", PASSWORD)
    query = {"prefix": dairy["prefix"]}
    assert (await client.get("/snms/api/prefix/query", params=query, headers=headers)).json()[
        "status"
    ] == 1
    monkeypatch.setattr(clock, "now", lambda: start + timedelta(hours=24, seconds=1))
    late = await client.get("/snms/api/prefix/query", params=query, headers=headers)
    assert late.status_code == 200
    assert late.json()["status"] == -1


async def test_disabling_or_deleting_a_user_ends_its_tokens(client: httpx.AsyncClient) -> None:
    dairy = await create_enterprise(client)
    await snms_user(client, dairy, "yili-mes")
    headers = await login(client, "yili-mes", PASSWORD)
    user = f"/api/v1/enterprises/{dairy['prefix']}/users/yili-mes"
    query = {"prefix": dairy["prefix"]}
    disabled = await client.patch(user, json={"disabled": True}, headers=bearer(dairy))
    assert disabled.status_code == 200
    assert disabled.json()["disabled"] is True
    answer = await client.get("/snms/api/prefix/query", params=query, headers=headers)
    assert answer.json()["status"] == -1
    again = await token_answer(client, "/identity/token", "yili-mes", PASSWORD)
    assert again["status"] == -2
    await client.patch(user, json={"disabled": False}, headers=bearer(dairy))
    headers = await login(client, "yili-mes", PASSWORD)
    assert (await client.delete(user, headers=bearer(dairy))).status_code == 204
    answer = await client.get("/snms/api/prefix/query", params=query, headers=headers)
    assert answer.json()["status"] == -1
    assert (await client.delete(user, headers=bearer(dairy))).status_code == 404


async def test_prefix_query_shows_only_the_callers_prefixes(
    client: httpx.AsyncClient, dairy: dict[str, Any]
) -> None:
    other = await create_enterprise(client, "Other")
    mine = await client.get(
        "/snms/api/prefix/query", params={"prefix": dairy["prefix"]}, headers=dairy["snms"]
    )
    data = mine.json()["data"]
    assert data["prefix"] == dairy["prefix"]
    assert data["entNameCn"] == "Yili Dairy"
    assert data["status"] == 1
    assert len(data["createDate"]) == len("2026-03-01 08:00:00")
    theirs = await client.get(
        "/snms/api/prefix/query", params={"prefix": other["prefix"]}, headers=dairy["snms"]
    )
    assert theirs.status_code == 200
    assert theirs.json()["status"] == -3


async def test_a_disabled_enterprise_logs_in_but_writes_nothing(
    client: httpx.AsyncClient, dairy: dict[str, Any]
) -> None:
    off = await client.patch(
        f"/api/v1/enterprises/{dairy['prefix']}", json={"status": "disabled"}, headers=OPERATOR
    )
    assert off.status_code == 200
    headers = await login(client, "yili-mes", PASSWORD)
    body = {"handle": f"{dairy['prefix']}/X-1", "templateVersion": "food.batch", "value": []}
    refused = await client.post("/identityv2/data", json=body, headers=headers)
    assert refused.status_code == 200
    assert refused.json()["status"] == -3


async def test_users_need_credentials(client: httpx.AsyncClient) -> None:
    dairy = await create_enterprise(client)
    users = f"/api/v1/enterprises/{dairy['prefix']}/users"
    assert (await client.get(users)).status_code == 401
    unknown = await client.get("/api/v1/enterprises/88.999.77/users", headers=OPERATOR)
    assert unknown.status_code == 404


async def test_a_password_guessed_at_is_throttled_per_username(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    dairy = await create_enterprise(client)
    await snms_user(client, dairy, "guessed-at")
    for n in range(settings.auth_failures_per_credential):
        wrong = await token_answer(client, "/identity/token", "guessed-at", f"guess-{n:04d}-xx")
        assert wrong["status"] == -2
        assert wrong["message"] == "用户名/密码错误！"
    # Now even the right password is refused, unchecked, for the rest of the window.
    refused = await client.post(
        "/identity/token", json={"username": "guessed-at", "password": PASSWORD}
    )
    assert refused.status_code == 200
    assert refused.json()["status"] == -2
    assert "too many failed attempts" in refused.json()["message"]
    assert refused.headers["retry-after"] == "60"
    # Another user is not affected by the guesses at this one.
    await snms_user(client, dairy, "not-guessed")
    assert (await token_answer(client, "/identity/token", "not-guessed", PASSWORD))["status"] == 1
