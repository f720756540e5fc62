"""Traceability: walking references up (unit -> case -> pallet) and down, across enterprises,
through cycles, within bounds."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from app.registry.identifiers import MAX_NODES
from tests.api.factories import (
    GAUGE,
    add_gauge_template,
    part_of,
    put,
    register,
    register_gauge,
    typed,
)
from tests.conftest import bearer, create_enterprise, url_value


async def walk(
    client: httpx.AsyncClient, handle: str, headers: dict[str, str] | None = None, **params: Any
) -> dict[str, Any]:
    answer = await client.get(
        f"/api/v1/identifiers/{quote(handle)}/trace", params=params, headers=headers
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def levels(body: dict[str, Any]) -> dict[str, int]:
    return {n["handle"]: n["depth"] for n in body["nodes"]}


def edges(body: dict[str, Any]) -> set[tuple[str, str]]:
    return {(e["from"], e["to"]) for e in body["edges"]}


async def packaging(client: httpx.AsyncClient) -> tuple[dict[str, Any], str, str, str]:
    dairy = await create_enterprise(client)
    pallet = await register(client, dairy, "PALLET-1", [url_value("https://t.example/p")])
    case = await register(client, dairy, "CASE-1", [part_of(pallet)])
    unit = await register(client, dairy, "UNIT-1", [part_of(case)])
    return dairy, unit, case, pallet


async def test_up_walks_unit_to_case_to_pallet(client: httpx.AsyncClient) -> None:
    _, unit, case, pallet = await packaging(client)
    body = await walk(client, unit, direction="up")
    assert levels(body) == {unit: 0, case: 1, pallet: 2}
    assert edges(body) == {(unit, case), (case, pallet)}
    assert body["truncated"] is False
    assert all(n["found"] for n in body["nodes"])
    pallet_node = next(n for n in body["nodes"] if n["handle"] == pallet)
    assert pallet_node["values"][0]["data"]["value"] == "https://t.example/p"


async def test_down_walks_pallet_to_case_to_unit(client: httpx.AsyncClient) -> None:
    _, unit, case, pallet = await packaging(client)
    body = await walk(client, pallet, direction="down")
    assert levels(body) == {pallet: 0, case: 1, unit: 2}
    assert edges(body) == {(case, pallet), (unit, case)}


async def test_depth_bounds_the_walk(client: httpx.AsyncClient) -> None:
    _, unit, case, _ = await packaging(client)
    assert levels(await walk(client, unit, direction="up", depth=1)) == {unit: 0, case: 1}
    assert levels(await walk(client, unit, direction="up", depth=0)) == {unit: 0}


async def test_a_cycle_ends_and_each_identifier_appears_once(client: httpx.AsyncClient) -> None:
    dairy = await create_enterprise(client)
    a, b, c = (f"{dairy['prefix']}/{name}" for name in ("A", "B", "C"))
    await put(client, bearer(dairy), a, [part_of(b)], status=201)
    await put(client, bearer(dairy), b, [part_of(c)], status=201)
    await put(client, bearer(dairy), c, [part_of(a)], status=201)
    for direction in ("up", "down"):
        body = await walk(client, a, direction=direction, depth=20)
        assert sorted(levels(body)) == sorted([a, b, c]), direction
        assert len(body["nodes"]) == 3
    assert edges(await walk(client, a, direction="up", depth=20)) == {(a, b), (b, c), (c, a)}


async def test_across_enterprises_raw_batch_to_product_batch(client: httpx.AsyncClient) -> None:
    farm = await create_enterprise(client, name="Farm")
    dairy = await create_enterprise(client, name="Dairy")
    raw = await register(client, farm, "RAW-MILK-7", [url_value("https://farm.example/7")])
    product = await register(client, dairy, "BATCH-9", [part_of(raw, vtype="MADE_FROM")])
    down = await walk(client, raw, direction="down")
    assert levels(down) == {raw: 0, product: 1}
    up = await walk(client, product, direction="up", headers=bearer(dairy))
    assert levels(up) == {product: 0, raw: 1}


async def test_the_index_follows_updates_and_deletes(client: httpx.AsyncClient) -> None:
    dairy, unit, case, pallet = await packaging(client)
    other = await register(client, dairy, "PALLET-2", [url_value("https://t.example/p2")])
    await put(client, bearer(dairy), case, [part_of(other)], status=200)  # repacked
    assert levels(await walk(client, pallet, direction="down")) == {pallet: 0}
    assert levels(await walk(client, other, direction="down")) == {other: 0, case: 1, unit: 2}
    assert (await client.delete(f"/api/handles/{unit}", headers=bearer(dairy))).is_success
    assert levels(await walk(client, other, direction="down")) == {other: 0, case: 1}


async def test_missing_targets_are_shown_as_not_found(client: httpx.AsyncClient) -> None:
    dairy = await create_enterprise(client)
    ghost = f"{dairy['prefix']}/NOT-REGISTERED"
    unit = await register(client, dairy, "UNIT-1", [part_of(ghost)])
    body = await walk(client, unit, direction="up")
    node = next(n for n in body["nodes"] if n["handle"] == ghost)
    assert (node["found"], node["values"], node["depth"]) == (False, [], 1)


async def test_the_number_of_nodes_is_capped(client: httpx.AsyncClient) -> None:
    dairy = await create_enterprise(client)
    parts = [f"{dairy['prefix']}/PART-{i}" for i in range(MAX_NODES + 20)]
    kit = await register(client, dairy, "KIT-1", [part_of(*parts)])
    body = await walk(client, kit, direction="up")
    assert len(body["nodes"]) == MAX_NODES
    assert body["truncated"] is True
    shown = {n["handle"] for n in body["nodes"]}
    assert all(a in shown and b in shown for a, b in edges(body))


async def test_bad_walks_are_clear_errors(client: httpx.AsyncClient) -> None:
    _, unit, _, _ = await packaging(client)
    cases = [
        ({"direction": "sideways"}, 400, "direction"),
        ({"depth": 21}, 400, "depth"),
        ({"depth": -1}, 400, "depth"),
        ({"depth": "deep"}, 422, "depth"),
    ]
    for params, status, word in cases:
        answer = await client.get(f"/api/v1/identifiers/{unit}/trace", params=params)
        assert answer.status_code == status, (params, answer.text)
        assert word in answer.json()["detail"], answer.json()
    missing = await client.get(f"/api/v1/identifiers/{unit}-NOPE/trace")
    assert missing.status_code == 404
    assert missing.json()["error"] == "HandleNotFound"


async def test_trace_shows_attributes_as_their_json_types(client: httpx.AsyncClient) -> None:
    plant = await create_enterprise(client)
    template = await add_gauge_template(client, plant)
    case = await register_gauge(client, plant, template, serial="CASE-G", **GAUGE)
    unit = await register_gauge(
        client, plant, template, serial="UNIT-G", quantity=1, online=False, partOf=case
    )
    up = await walk(client, unit, direction="up")
    assert {n["handle"]: typed(n) for n in up["nodes"]} == {
        unit: {"serial": "UNIT-G", "quantity": 1, "online": False, "partOf": case},
        case: {"serial": "CASE-G", "quantity": 11500, "online": True, "madeOn": "2026-03-01"},
    }
    down = await walk(client, case, direction="down")
    assert typed(down["nodes"][0])["quantity"] == 11500
    assert typed(down["nodes"][1])["online"] is False
