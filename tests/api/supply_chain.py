"""Factory: a dairy's supply chain (product, pallet batch, case, units), as the page tests and
the browser tests scan it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from app.registry.templates import FOOD_BATCH, FOOD_PRODUCT
from tests.conftest import bearer, create_enterprise

PRODUCT_NAME = FOOD_PRODUCT["example"]["productName"]


@dataclass(frozen=True)
class Chain:
    dairy: dict[str, Any]
    product: str
    batch: str
    case: str
    unit: str


async def identifier(
    client: httpx.AsyncClient,
    owner: dict[str, Any],
    suffix: str,
    template: str,
    attributes: dict[str, Any],
    **extra: Any,
) -> str:
    handle = f"{owner['prefix']}/{suffix}"
    answer = await client.post(
        "/api/v1/identifiers",
        json={"handle": handle, "template": template, "attributes": attributes, **extra},
        headers=bearer(owner),
    )
    assert answer.status_code == 201, answer.text
    return handle


def packed(product: str, level: str, parent: str | None = None) -> dict[str, Any]:
    attributes = {**FOOD_BATCH["example"], "product": product, "packagingLevel": level}
    del attributes["inspectionReport"]
    if parent is not None:
        attributes["parent"] = parent
    return attributes


async def chain(client: httpx.AsyncClient, *, units: int = 1) -> Chain:
    """A product, a pallet batch of it, a case on the pallet and ``units`` units in the case."""
    dairy = await create_enterprise(client, "Hohhot Grassland Dairy")
    product = await identifier(client, dairy, "MILK-250", "food.product", FOOD_PRODUCT["example"])
    batch = await identifier(client, dairy, "B20260301-01", "food.batch", packed(product, "pallet"))
    case = await identifier(
        client, dairy, "CASE-0001", "food.batch", packed(product, "case", batch)
    )
    first = ""
    for n in range(units):
        unit = await identifier(
            client, dairy, f"UNIT-{n:06d}", "food.batch", packed(product, "item", case)
        )
        first = first or unit
    return Chain(dairy, product, batch, case, first)
