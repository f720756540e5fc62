"""SNMS templates as node templates.

An SNMS template is named by ``(prefix, version)``, the version free text ("1.0.0",
"单品模板12"). It is stored as the node template ``<prefix>/snms-<hash of version>`` (each
SNMS edit adds a version of it, which keeps every item), and ``snms_templates`` maps the name
to it. Items map one to one: ``idType`` is the item name (and the value ``type``), ``idIndex``
its index, ``name`` its Chinese label, ``metadata`` its length constraint, ``state`` 0 a
disabled item. So a template made here validates registrations made through any API, and a
``templateVersion`` that names no SNMS template is looked up as a node template reference
(``food.batch``, ``<id>@<n>``: what index 1001 of an identifier holds).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import Principal
from app.errors import (
    AuthenticationRequired,
    InvalidRequest,
    InvalidTemplate,
    PermissionDenied,
    TemplateNotFound,
)
from app.registry import clock
from app.registry.templates import (
    FIRST_ATTRIBUTE_INDEX,
    MAX_TEXT,
    Item,
    Template,
    catalog,
    item_json,
)
from app.storage import snms as repo
from app.storage.models import SnmsTemplate
from resolver.errors import InvalidHandle
from resolver.identifier import parse_prefix
from resolver.text import first_problem

DEFAULT_VERSION = "OneCodeDefault"  # what integrations that send none were built around
MAX_VERSION = 128
INDUSTRY_FIELDS = ("industryCategory", "industrySpecific", "industryTrade", "industrySubclass")
# The node's industry field is required; SNMS's oldest template path sends none.
UNSPECIFIED_INDUSTRY = "C"  # manufacturing, where SNMS integrations come from


async def resolve(
    session: AsyncSession, principal: Principal, prefix: str, version: str | None
) -> Template:
    """The node template an SNMS ``templateVersion`` under ``prefix`` names."""
    name = version or DEFAULT_VERSION
    mapped = await repo.template_name(session, prefix, name)
    try:
        return await catalog.find(session, principal, mapped.template_id if mapped else name)
    except TemplateNotFound as exc:
        raise TemplateNotFound(f"模板不存在: no template {name!r} under {prefix}") from exc


async def show(
    session: AsyncSession, principal: Principal, prefix: str, version: str, *, node_prefix: str
) -> dict[str, Any]:
    owner = _prefix(prefix)
    template = await resolve(session, principal, owner, version)
    mapped = await repo.template_name(session, owner, version)
    return template_view(template, owner, version, mapped, node_prefix=node_prefix)


async def create(
    session: AsyncSession, principal: Principal, body: Any, *, node_prefix: str, strict: bool
) -> None:
    """A new SNMS template; ``strict`` (v3, v5) requires the industry fields and type."""
    fields = _fields(body, strict=strict)
    prefix, version = fields["prefix"], fields["version"]
    _may_change(principal, prefix)
    if await repo.template_name(session, prefix, version) is not None:
        raise InvalidTemplate(f"模板已存在: template {version!r} exists under {prefix}")
    items = _new_items([], _sent_items(body))
    template_id = node_template_id(prefix, version)
    definition = _definition(template_id, version, fields, items)
    await catalog.create(session, definition, principal=principal, node_prefix=node_prefix)
    if not await repo.add_template_name(
        session,
        prefix=prefix,
        version=version,
        template_id=template_id,
        details=_details(fields),
        now=clock.now(),
    ):
        raise InvalidTemplate(f"模板已存在: template {version!r} exists under {prefix}")


async def edit(session: AsyncSession, principal: Principal, body: Any, *, node_prefix: str) -> None:
    """An incremental edit: items sent with a known ``idIndex`` change, others are added,
    items not sent stay as they are. Items are disabled (``state`` 0), never deleted."""
    fields = _fields(body, strict=False)
    prefix, version = fields["prefix"], fields["version"]
    _may_change(principal, prefix)
    mapped = await repo.template_name(session, prefix, version)
    if mapped is None:
        raise TemplateNotFound(f"模板不存在: no template {version!r} under {prefix}")
    current = await catalog.find(session, principal, mapped.template_id)
    items = _new_items([item_json(i) for i in current.items], _sent_items(body))
    details = {**mapped.details, **_details(fields, present=body)}
    definition = _definition(current.id, version, details, items)
    await catalog.create(session, definition, principal=principal, node_prefix=node_prefix)
    before = {i.name: i.disabled for i in current.items}
    for item in items:  # a state applies to every version, as the node's own API does it
        if before.get(item["name"], item["disabled"]) != item["disabled"]:
            await catalog.set_item_disabled(
                session,
                current.id,
                item["name"],
                disabled=item["disabled"],
                principal=principal,
                node_prefix=node_prefix,
            )
    await repo.change_template_details(session, mapped.id, details)


async def delete(session: AsyncSession, principal: Principal, body: Any) -> None:
    """Forget the SNMS name. The node template stays: identifiers registered against it
    still carry it and keep validating against it."""
    fields = _fields(body, strict=False, items=False)
    _may_change(principal, fields["prefix"])
    mapped = await repo.template_name(session, fields["prefix"], fields["version"])
    if mapped is None:
        raise TemplateNotFound(
            f"模板不存在: no template {fields['version']!r} under {fields['prefix']}"
        )
    await repo.remove_template_name(session, mapped.id)


def node_template_id(prefix: str, version: str) -> str:
    return f"{prefix}/snms-{hashlib.sha256(version.encode()).hexdigest()[:16]}"


def template_view(
    template: Template,
    prefix: str,
    version: str,
    mapped: SnmsTemplate | None,
    *,
    node_prefix: str,
) -> dict[str, Any]:
    details = mapped.details if mapped is not None else {}
    return {
        "id": mapped.id if mapped is not None else 0,
        "name": "",
        "prefix": prefix,
        "version": version,
        "handle": str(catalog.meta_handle(template, node_prefix=node_prefix)),
        **{f: details.get(f, "") for f in INDUSTRY_FIELDS},
        "type": details.get("type", 2),
        "description": details.get("description", template.title_zh),
        "items": [_item_view(i) for i in template.items],
    }


def _item_view(item: Item) -> dict[str, Any]:
    return {
        "name": item.label_zh,
        "idType": item.name,
        "idIndex": item.index,
        "required": item.required,
        "state": 0 if item.disabled else 1,
        "metadataId": item.index,
        "metadata": {
            "type": item.type,
            "minLength": item.min_length if item.min_length is not None else 0,
            "maxLength": item.max_length if item.max_length is not None else MAX_TEXT,
        },
    }


# --- reading SNMS template bodies ---


def _fields(body: Any, *, strict: bool, items: bool = True) -> dict[str, Any]:
    if not isinstance(body, Mapping):
        raise InvalidRequest("the body must be a JSON object (the template)")
    if problem := first_problem(body, "body"):
        raise InvalidRequest(problem)
    prefix, version = body.get("prefix"), body.get("version")
    if not isinstance(prefix, str) or not isinstance(version, str) or not version.strip():
        raise InvalidRequest("缺少必要的请求参数: prefix, version")
    if len(version) > MAX_VERSION:
        raise InvalidRequest(f"version: at most {MAX_VERSION} characters")
    required = [*INDUSTRY_FIELDS, "type"] if strict else []
    missing = [f for f in required if body.get(f) in (None, "")]
    if items and strict and not body.get("items"):
        missing.append("items")
    if missing:
        raise InvalidRequest(f"缺少必要的请求参数: {', '.join(missing)}")
    return {**{k: body.get(k) for k in body}, "prefix": _prefix(prefix), "version": version}


def _prefix(text: str) -> str:
    try:
        return parse_prefix(text)
    except InvalidHandle as exc:
        raise InvalidRequest(f"prefix: {exc.message}") from exc


def _details(fields: Mapping[str, Any], present: Mapping[str, Any] | None = None) -> dict[str, Any]:
    keys = (*INDUSTRY_FIELDS, "type", "description")
    return {k: fields.get(k) for k in keys if present is None or k in present}


def _may_change(principal: Principal, prefix: str) -> None:
    if principal.is_anonymous:
        raise AuthenticationRequired("changing templates needs a token (POST /identity/token)")
    if not (principal.is_operator or principal.owns(prefix)):
        raise PermissionDenied(f"prefix {prefix} is not yours")


def _sent_items(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    items = body.get("items") or []
    if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
        raise InvalidRequest("items: must be a list of objects")
    return items


def _new_items(
    current: list[dict[str, Any]], sent: list[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The node items after applying ``sent`` SNMS items to ``current`` node items."""
    items = [dict(i) for i in current]
    by_index = {i["index"]: i for i in items}
    for position, raw in enumerate(sent):
        where = f"items[{position}]"
        index = _whole(raw.get("idIndex"), f"{where}.idIndex")
        id_type = raw.get("idType")
        if index in by_index:
            item = by_index[index]
            if id_type not in (None, item["name"]):
                raise InvalidTemplate(
                    f"{where}: idIndex {index} is {item['name']}, not {id_type}; an item's "
                    "idType does not change"
                )
        else:
            if not isinstance(id_type, str) or any(i["name"] == id_type for i in items):
                raise InvalidTemplate(f"{where}: idType must be given and not repeat")
            if index is None:
                index = max([FIRST_ATTRIBUTE_INDEX - 1, *by_index]) + 1
            item = {"index": index, "name": id_type, "label_en": id_type, "type": "string"}
            items.append(item)
            by_index[index] = item
        _apply(item, raw, where)
    return items


def _apply(item: dict[str, Any], raw: Mapping[str, Any], where: str) -> None:
    if "name" in raw or "label_zh" not in item:
        item["label_zh"] = str(raw.get("name") or item["name"])
    if "required" in raw:
        item["required"] = raw["required"] is True
    if raw.get("state") is not None:
        item["disabled"] = _whole(raw["state"], f"{where}.state") == 0
    item.setdefault("disabled", False)
    metadata = raw.get("metadata")
    if isinstance(metadata, Mapping):
        kind = str(metadata.get("type", "string")).lower()
        if kind != "string" and kind != item["type"]:
            raise InvalidTemplate(f"{where}.metadata.type: only string is supported")
        low = _whole(metadata.get("minLength"), f"{where}.metadata.minLength")
        high = _whole(metadata.get("maxLength"), f"{where}.metadata.maxLength")
        if low is not None or high is not None:
            constraints = item.setdefault("constraints", {})
            constraints["length"] = {"min": low, "max": high}


def _whole(raw: Any, where: str) -> int | None:
    """A whole number sent as a number or as digits ("2000": how SNMS examples send it)."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().isdigit():
        return int(raw.strip())
    raise InvalidRequest(f"{where}: must be a whole number, got {raw!r}")


def _definition(
    template_id: str, version: str, fields: Mapping[str, Any], items: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "id": template_id,
        "title": {"zh": version, "en": version},
        "industry": _industry(fields),
        "items": items,
        "example": _example(items),
    }


def _industry(fields: Mapping[str, Any]) -> str:
    """GB/T 4754 as the node writes it (``C1441``): the section and the finest code sent."""
    section = str(fields.get("industryCategory") or UNSPECIFIED_INDUSTRY).strip().upper()[:1]
    codes = [str(fields.get(f) or "") for f in reversed(INDUSTRY_FIELDS[1:])]
    finest = next((c for c in codes if c.isdigit() and len(c) <= 4), "")
    return section + finest


def _example(items: list[dict[str, Any]]) -> dict[str, str]:
    """Values that satisfy the template: the node requires one with every template."""
    usable = [i for i in items if not i.get("disabled")]
    chosen = [i for i in usable if i.get("required")] or usable[:1]
    example = {}
    for item in chosen:
        low = (item.get("constraints", {}).get("length") or {}).get("min") or 1
        example[item["name"]] = "x" * low
    return example
