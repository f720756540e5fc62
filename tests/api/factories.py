"""Small factories shared by the history, trace, grant and leak tests."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from tests.conftest import bearer

Headers = dict[str, str]


def restricted(index: int, vtype: str, data: str, **extra: Any) -> dict[str, Any]:
    """A value only the owner (and those it granted) may read."""
    return {"index": index, "type": vtype, "data": data, "permissions": "1100", **extra}


def part_of(*handles: str, index: int = 10, vtype: str = "PARENT", **extra: Any) -> dict[str, Any]:
    """A value referencing the identifiers it belongs to (unit -> case, batch -> raw batch)."""
    return {
        "index": index,
        "type": vtype,
        "data": handles[0] if handles else "",
        "references": [{"handle": h, "index": 1} for h in handles],
        **extra,
    }


async def put(
    client: httpx.AsyncClient, headers: Headers, handle: str, values: list[Any], status: int = 0
) -> httpx.Response:
    answer = await client.put(
        f"/api/handles/{quote(handle)}", json={"values": values}, headers=headers
    )
    assert answer.status_code in ({status} if status else {200, 201}), answer.text
    return answer


async def register(
    client: httpx.AsyncClient, enterprise: dict[str, Any], suffix: str, values: list[Any]
) -> str:
    handle = f"{enterprise['prefix']}/{suffix}"
    await put(client, bearer(enterprise), handle, values, status=201)
    return handle


async def grant(
    client: httpx.AsyncClient, owner: dict[str, Any], grantee: str, scope: str, **extra: Any
) -> dict[str, Any]:
    answer = await client.post(
        "/api/v1/grants", json={"grantee": grantee, "scope": scope, **extra}, headers=bearer(owner)
    )
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


async def reader(client: httpx.AsyncClient, owner: dict[str, Any], name: str) -> dict[str, Any]:
    answer = await client.post("/api/v1/reader-tokens", json={"name": name}, headers=bearer(owner))
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


async def history(client: httpx.AsyncClient, handle: str, headers: Headers | None = None) -> Any:
    answer = await client.get(f"/api/v1/identifiers/{quote(handle)}/history", headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def values_by_index(body: dict[str, Any]) -> dict[int, Any]:
    return {v["index"]: v["data"]["value"] for v in body["values"]}


def gauge_template(prefix: str) -> dict[str, Any]:
    """An enterprise template with a number, a true/false, a date and a reference item."""
    return {
        "id": f"{prefix}/gauge",
        "industry": "C34",
        "title": {"zh": "仪表", "en": "Gauge"},
        "items": [
            {"index": 2000, "name": "serial", "label_zh": "序列号", "label_en": "Serial",
             "type": "string", "required": True},
            {"index": 2001, "name": "quantity", "label_zh": "数量", "label_en": "Quantity",
             "type": "number"},
            {"index": 2002, "name": "online", "label_zh": "在线", "label_en": "Online",
             "type": "enum", "constraints": {"enum": ["true", "false"]}},
            {"index": 2003, "name": "madeOn", "label_zh": "生产日期", "label_en": "Made on",
             "type": "date"},
            {"index": 2004, "name": "partOf", "label_zh": "所属", "label_en": "Part of",
             "type": "reference"},
        ],
        "example": {"serial": "G-1", "quantity": 11500, "online": True, "madeOn": "2026-03-01"},
    }  # fmt: skip


GAUGE = {"quantity": 11500, "online": True, "madeOn": "2026-03-01"}


async def add_gauge_template(client: httpx.AsyncClient, enterprise: dict[str, Any]) -> str:
    """Adds the enterprise's gauge template; its id."""
    body = gauge_template(enterprise["prefix"])
    answer = await client.post("/api/v1/templates", json=body, headers=bearer(enterprise))
    assert answer.status_code == 201, answer.text
    return str(body["id"])


async def register_gauge(
    client: httpx.AsyncClient, enterprise: dict[str, Any], template: str, **attributes: Any
) -> str:
    answer = await client.post(
        "/api/v1/identifiers",
        json={"prefix": enterprise["prefix"], "template": template, "attributes": attributes},
        headers=bearer(enterprise),
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["handle"])


def typed(view: dict[str, Any]) -> dict[str, Any]:
    """An answer's attributes as name -> value."""
    return {name: shown["value"] for name, shown in view["attributes"].items()}
