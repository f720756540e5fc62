"""No restricted value leaks on any read path, to any caller who may not read it.

Every read path (Handle API with filters and ``?at=``, proxy redirect and page, history, trace
up and down, the native identifier view with ``?at=``, search by public and by restricted
attributes) is walked by every kind of caller. Callers who may not read the
restricted values must get exactly what an anonymous caller gets — same status, same body,
same redirect — so nothing leaks through values, error messages, counts or the shape of a
walk; and the anonymous answers hold no restricted value. Callers who may read them must see
them, so the test fails if the rule hides everything.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from app.registry.templates import FOOD_BATCH
from tests.api.factories import grant, part_of, put, reader, register, restricted
from tests.conftest import OPERATOR, bearer, create_enterprise, url_value

SECRET_EMAIL = "recall-desk@yili.example"
SECRET_EMAIL_2 = "recall-desk-2@yili.example"
SECRET_HOST = "secret.example"
SECRET_ORIGIN = "SECRET-FARM-9"
SECRET_REPORT = "QC-SECRET-77"
SECRETS = (SECRET_EMAIL, SECRET_EMAIL_2, SECRET_HOST, SECRET_ORIGIN, SECRET_REPORT)
PUBLIC_URL = "https://t.example/milk/1"


@dataclass
class World:
    milk: str  # public URL, restricted URL and e-mail, a restricted reference to supplier
    hidden: str  # only a restricted URL
    supplier: str
    case: str
    batch: str  # registered against food.batch: a restricted item, and one narrowed to restricted
    callers: dict[str, dict[str, str]]
    unauthorized: list[str]
    authorized: list[str]


def token(issued: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {issued['token']}"}


async def build(client: httpx.AsyncClient) -> World:
    owner = await create_enterprise(client, name="Yili Dairy")
    rival = await create_enterprise(client, name="Mengniu")
    partner = await create_enterprise(client, name="Logistics partner")
    lapsed = await create_enterprise(client, name="Former partner")
    owner_h = bearer(owner)
    supplier = await register(client, owner, "SUPPLIER-77", [url_value("https://t.example/s")])
    case = await register(client, owner, "CASE-1", [url_value("https://t.example/c")])
    first = [
        restricted(1, "URL", f"https://{SECRET_HOST}/internal/1"),
        restricted(2, "EMAIL", SECRET_EMAIL),
        url_value(PUBLIC_URL, 3),
        part_of(supplier, index=4, vtype="MADE_FROM", permissions="1100"),
        part_of(case, index=5),
    ]
    milk = await register(client, owner, "MILK-1", first)
    # A change to a restricted value only, then a public one.
    second = [*first[:1], restricted(2, "EMAIL", SECRET_EMAIL_2), *first[2:]]
    await put(client, owner_h, milk, second, status=200)
    await put(client, owner_h, milk, [*second[:2], url_value(PUBLIC_URL + "-v2", 3), *second[3:]])
    hidden = await register(
        client, owner, "HIDDEN-1", [restricted(1, "URL", f"https://{SECRET_HOST}/only")]
    )
    batch = await client.post(
        "/api/v1/identifiers",
        headers=owner_h,
        json={
            "handle": f"{owner['prefix']}/BATCH-LEAK-1",
            "template": "food.batch",
            "attributes": {
                **FOOD_BATCH["example"],
                "product": f"{owner['prefix']}/PRODUCT-MILK-250",
                "batchNumber": "B-LEAK-1",
                "inspectionReport": f"{owner['prefix']}/{SECRET_REPORT}",  # restricted item
                "origin": SECRET_ORIGIN,
            },
            "visibility": {"origin": "restricted"},
        },
    )
    assert batch.status_code == 201, batch.text

    await grant(client, owner, partner["prefix"], owner["prefix"])
    granted_reader = await reader(client, owner, "Regulator")
    for scope in (milk, hidden, batch.json()["handle"]):
        await grant(client, owner, granted_reader["id"], scope)
    idle_reader = await reader(client, owner, "Customer without grants")
    await grant(client, owner, rival["prefix"], case)  # another identifier only
    revoked = await grant(client, owner, rival["prefix"], milk)
    assert (await client.delete(f"/api/v1/grants/{revoked['id']}", headers=owner_h)).is_success
    expires = datetime.now(UTC) + timedelta(seconds=1)
    await grant(client, owner, lapsed["prefix"], owner["prefix"], expiresAt=expires.isoformat())
    await asyncio.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.1)

    callers = {
        "anonymous": {},
        "rival, other scope and revoked grant": bearer(rival),
        "expired grant": bearer(lapsed),
        "reader without grant": token(idle_reader),
        "owner": owner_h,
        "operator": OPERATOR,
        "granted enterprise": bearer(partner),
        "granted reader": token(granted_reader),
    }
    names = list(callers)
    return World(
        milk, hidden, supplier, case, batch.json()["handle"], callers, names[:4], names[4:]
    )


def read_paths(world: World, now: str) -> list[str]:
    milk = world.milk
    return [
        f"/api/handles/{milk}",
        f"/api/handles/{milk}?type=EMAIL",
        f"/api/handles/{milk}?index=2",
        f"/api/handles/{milk}?index=99",
        f"/api/handles/{milk}?type=URL&pretty=true",
        f"/api/handles/{milk}?publicOnly=false",
        f"/api/handles/{milk}?at={now}",
        f"/api/handles/{milk}?at={now}&index=2",
        f"/api/handles/{world.hidden}",
        f"/api/handles/{world.hidden}?type=URL",
        f"/{milk}",
        f"/{milk}?noredirect",
        f"/{world.hidden}",
        f"/api/v1/identifiers/{milk}/history",
        f"/api/v1/identifiers/{world.hidden}/history",
        f"/api/v1/identifiers/{milk}/trace?direction=up",
        f"/api/v1/identifiers/{world.supplier}/trace?direction=down",
        f"/api/v1/identifiers/{world.batch}",
        f"/api/v1/identifiers/{world.batch}?at={now}",
        "/api/v1/search?template=food.batch&attr.batchNumber=B-LEAK-1",
        f"/api/v1/search?template=food.batch&attr.origin={SECRET_ORIGIN}",
        f"/api/v1/search?template=food.batch&attr.inspectionReport={world.batch.split('/')[0]}/{SECRET_REPORT}",
    ]


def seen(response: httpx.Response) -> tuple[int, str, str | None]:
    return response.status_code, response.text, response.headers.get("location")


@pytest.fixture
async def answers(client: httpx.AsyncClient) -> tuple[World, dict[str, dict[str, Any]]]:
    world = await build(client)
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    out: dict[str, dict[str, Any]] = {}
    for name, headers in world.callers.items():
        out[name] = {}
        for path in read_paths(world, now):
            response = await client.get(path, headers=headers)
            assert response.status_code < 500, (name, path, response.text)
            out[name][path] = seen(response)
    return world, out


async def test_callers_who_may_not_read_get_exactly_the_anonymous_answer(
    answers: tuple[World, dict[str, dict[str, Any]]],
) -> None:
    world, got = answers
    for path, (status, text, location) in got["anonymous"].items():
        for secret in SECRETS:
            assert secret not in text, (path, secret)
            assert secret not in (location or ""), (path, secret)
        for name in world.unauthorized[1:]:
            assert got[name][path] == (status, text, location), (name, path)


async def test_a_filter_on_a_restricted_value_looks_like_a_filter_on_nothing(
    answers: tuple[World, dict[str, dict[str, Any]]],
) -> None:
    world, got = answers
    for name in world.unauthorized:
        restricted_index = got[name][f"/api/handles/{world.milk}?index=2"]
        absent_index = got[name][f"/api/handles/{world.milk}?index=99"]
        assert restricted_index == absent_index, name


async def test_hidden_changes_and_references_are_not_counted_or_followed(
    client: httpx.AsyncClient, answers: tuple[World, dict[str, dict[str, Any]]]
) -> None:
    world, got = answers
    history = f"/api/v1/identifiers/{world.milk}/history"
    up = f"/api/v1/identifiers/{world.milk}/trace?direction=up"
    down = f"/api/v1/identifiers/{world.supplier}/trace?direction=down"
    for name in world.callers:
        changes = httpx.Response(200, text=got[name][history][1]).json()["changes"]
        walked_up = httpx.Response(200, text=got[name][up][1]).json()
        walked_down = httpx.Response(200, text=got[name][down][1]).json()
        reached_up = {n["handle"] for n in walked_up["nodes"]}
        reached_down = {n["handle"] for n in walked_down["nodes"]}
        if name in world.unauthorized:
            assert [c["operation"] for c in changes] == ["create", "update"], name
            assert all(2 not in c["changed"] and 1 not in c["changed"] for c in changes), name
            assert reached_up == {world.milk, world.case}, name
            assert reached_down == {world.supplier}, name
        else:
            assert [c["operation"] for c in changes] == ["create", "update", "update"], name
            assert changes[1]["changed"] == [2], name
            assert reached_up == {world.milk, world.case, world.supplier}, name
            assert reached_down == {world.supplier, world.milk}, name


async def test_callers_who_may_read_see_the_restricted_values(
    answers: tuple[World, dict[str, dict[str, Any]]],
) -> None:
    world, got = answers
    milk = world.milk
    for name in world.authorized:
        answers_of = got[name]
        assert SECRET_EMAIL_2 in answers_of[f"/api/handles/{milk}?index=2"][1], name
        at_paths = [p for p in answers_of if "?at=" in p and p.endswith("index=2")]
        assert SECRET_EMAIL_2 in answers_of[at_paths[0]][1], name
        assert SECRET_EMAIL in answers_of[f"/api/v1/identifiers/{milk}/history"][1], name
        assert SECRET_HOST in answers_of[f"/api/handles/{world.hidden}"][1], name
        assert SECRET_HOST in answers_of[f"/api/v1/identifiers/{world.hidden}/history"][1], name
        batch = answers_of[f"/api/v1/identifiers/{world.batch}"][1]
        assert SECRET_ORIGIN in batch, name
        assert SECRET_REPORT in batch, name
        batch_then = next(
            p for p in answers_of if p.startswith(f"/api/v1/identifiers/{world.batch}?at=")
        )
        assert SECRET_ORIGIN in answers_of[batch_then][1], name
        by_secret = f"/api/v1/search?template=food.batch&attr.origin={SECRET_ORIGIN}"
        assert world.batch in answers_of[by_secret][1], name
        # The proxy serves the public view to everyone: a QR code is scanned anonymously.
        assert answers_of[f"/{milk}"] == got["anonymous"][f"/{milk}"], name
