"""``/api/v1/templates``: the industry templates identifiers are registered against."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from app.api.deps import CallerDep, NodeDep, WriteSession, json_body
from app.api.schemas import RequestBody
from app.registry.templates import FOOD_BATCH, MAX_VERSION, catalog, template_json

router = APIRouter(prefix="/api/v1/templates", tags=["Templates"])
Body = Annotated[Any, Depends(json_body)]
TEMPLATE_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}, "example": FOOD_BATCH}},
    }
}


class ItemChange(RequestBody):
    disabled: bool


@router.get("", summary="List templates")
async def list_templates(node: NodeDep, principal: CallerDep) -> list[dict[str, Any]]:
    """The latest version of every template the caller may use: the node's, and an
    enterprise's own (to that enterprise and the operator)."""
    async with node.database.read_session() as session:
        templates = await catalog.list_latest(session, principal)
    return [
        {
            "id": t.id,
            "version": t.version,
            "industry": t.industry,
            "title": {"zh": t.title_zh, "en": t.title_en},
            "owner": t.owner_prefix or "node",
        }
        for t in templates
    ]


@router.get("/{template_id:path}", summary="Show a template")
async def show(
    template_id: str,
    node: NodeDep,
    principal: CallerDep,
    version: Annotated[
        int | None,
        Query(ge=1, le=MAX_VERSION, description="A version; default the latest."),
    ] = None,
) -> dict[str, Any]:
    """A template with its items, constraints and an example of valid attributes."""
    reference = template_id if version is None else f"{template_id}@{version}"
    async with node.database.read_session() as session:
        return template_json(await catalog.find(session, principal, reference))


@router.post("", status_code=201, summary="Add a template", openapi_extra=TEMPLATE_BODY)
async def create(
    body: Body, node: NodeDep, principal: CallerDep, session: WriteSession
) -> dict[str, Any]:
    """The operator adds node-wide templates (``food.batch``); an enterprise adds its own
    under its prefix (``88.999.1/widget``). Sending an existing id adds its next version,
    which must keep every item of the previous one (disable items instead)."""
    template = await catalog.create(
        session, body, principal=principal, node_prefix=node.settings.node_prefix
    )
    return template_json(template)


@router.patch("/{template_id:path}/items/{name}", summary="Disable or enable an item")
async def change_item(
    template_id: str,
    name: str,
    change: ItemChange,
    node: NodeDep,
    principal: CallerDep,
    session: WriteSession,
) -> dict[str, Any]:
    """``{"disabled": true}``: new registrations and changes may no longer set the item;
    identifiers that hold it keep their value. Applies to every version of the template."""
    template = await catalog.set_item_disabled(
        session,
        template_id,
        name,
        disabled=change.disabled,
        principal=principal,
        node_prefix=node.settings.node_prefix,
    )
    return template_json(template)
