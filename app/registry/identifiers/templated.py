"""Identifiers registered against a template: register, change and show them by attribute.

The attributes are ordinary Handle values in the identifier's record (see
``app/registry/templates/attributes.py``) written through ``put_record``, so authorization, the
cache and every other rule of the Handle API apply unchanged.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import Principal
from app.errors import InvalidRequest
from app.registry.identifiers.handles import authorize_write, can_read_restricted, put_record
from app.registry.identifiers.idempotency import earlier_mint, fingerprint
from app.registry.templates import catalog, conformance
from app.registry.templates.attributes import (
    TEMPLATE_INDEX,
    Problem,
    attributes_of,
    check,
    json_value,
    template_reference,
)
from app.registry.templates.conformance import claim_unique
from app.registry.templates.definitions import Template
from app.storage import handles as repo
from resolver.errors import HandleNotFound
from resolver.identifier import Handle, parse_handle, parse_prefix
from resolver.record import Record
from resolver.values import HandleValue, value_json, values_from_stored

URL_INDEX = 1
MAX_URL = 2048
UNSET: Any = object()  # "url" absent from a change (None removes the URL)


@dataclass(frozen=True, slots=True)
class Registered:
    """An identifier with its template; ``created`` is False for a repeated idempotent call."""

    record: Record
    template: Template | None
    created: bool = True


async def register(
    session: AsyncSession,
    *,
    principal: Principal,
    node_prefix: str,
    template: str,
    attributes: Mapping[str, Any],
    handle: str | None = None,
    prefix: str | None = None,
    visibility: Mapping[str, Any] | None = None,
    url: str | None = None,
    idempotency_key: str | None = None,
) -> Registered:
    """Create an identifier at ``handle``, or under ``prefix`` with a node-chosen suffix."""
    target = target_handle(handle, prefix)
    await authorize_write(session, principal, target, node_prefix=node_prefix)
    if idempotency_key is not None:
        asked = registration_fingerprint(
            handle=handle,
            prefix=prefix,
            template=template,
            attributes=attributes,
            visibility=visibility,
            url=url,
        )
        earlier = await earlier_mint(
            session, principal, key=idempotency_key, handle=target, asked=asked
        )
        if earlier is not None:
            return Registered(earlier, await template_of(session, earlier), created=False)
    chosen = await catalog.find(session, principal, template)
    checked = check(chosen, attributes, visibility=visibility)
    await claim_unique(session, checked, str(target), principal, url_problems(url))
    values = [*checked.values, *url_values(url)]
    record, _ = await put_record(
        session, target, values, principal=principal, node_prefix=node_prefix, overwrite=False
    )
    return Registered(record, chosen)


def registration_fingerprint(
    *,
    handle: str | None,
    prefix: str | None,
    template: str,
    attributes: Mapping[str, Any] | None,
    visibility: Mapping[str, Any] | None,
    url: str | None,
) -> str:
    """The fingerprint stored with a registration's idempotency key, one or in a batch
    (``app/registry/identifiers/bulk.py``): absent attributes and visibility count as empty, as they
    do on ``POST /api/v1/identifiers``."""
    return fingerprint(
        {
            "handle": handle,
            "prefix": prefix,
            "template": template,
            "attributes": attributes or {},
            "visibility": visibility or {},
            "url": url,
        }
    )


def target_handle(handle: str | None, prefix: str | None) -> Handle:
    if (handle is None) == (prefix is None):
        raise InvalidRequest(
            'send either "handle" (the full identifier) or "prefix" (the node picks a suffix)'
        )
    if handle is not None:
        return parse_handle(handle)
    return parse_handle(f"{parse_prefix(str(prefix))}/{uuid.uuid4()}")


async def change(
    session: AsyncSession,
    handle: str,
    *,
    principal: Principal,
    node_prefix: str,
    attributes: Mapping[str, Any],
    visibility: Mapping[str, Any] | None = None,
    url: Any = UNSET,
    later: Template | None = None,
) -> Registered:
    """Change some attributes (None removes one); the result is validated again as a whole,
    against the template version the identifier was registered with, or ``later``, a later
    version of the same template (which keeps every item of the earlier one)."""
    target = parse_handle(handle)
    await authorize_write(session, principal, target, node_prefix=node_prefix)
    stored = await repo.lock(session, str(target))
    if stored is None:
        raise HandleNotFound.of(str(target))
    existing = values_from_stored(stored)
    template = await template_of(session, Record(str(target), existing))
    if template is None:
        raise InvalidRequest(
            f"{target} was not registered against a template; change it with "
            "PUT /api/handles/ or register it with POST /api/v1/identifiers"
        )
    if later is not None:
        if later.id != template.id or later.version < template.version:
            raise InvalidRequest(
                f"{target} was registered against template {template.reference}; a change "
                f"may move it to a later version of {template.id} only, not {later.reference}"
            )
        template = later
    held = attributes_of(template, existing)
    merged: dict[str, Any] = {name: v.value for name, v in held.items()}
    merged.update(attributes)
    narrowed = {n: "restricted" for n, v in held.items() if not v.public_read}
    checked = check(
        template,
        merged,
        visibility={**narrowed, **(visibility or {})},
        unchanged=[n for n in held if n not in attributes],
    )
    await claim_unique(session, checked, str(target), principal, url_problems(url))
    replaced = {TEMPLATE_INDEX, *(i.index for i in template.items)}
    if url is not UNSET:
        replaced.add(URL_INDEX)
    kept = [v for v in existing if v.index not in replaced]
    new_url = url_values(url) if url is not UNSET else ()
    record, _ = await put_record(
        session,
        target,
        [*kept, *checked.values, *new_url],
        principal=principal,
        node_prefix=node_prefix,
    )
    return Registered(record, template, created=False)


def url_problems(url: Any) -> list[Problem]:
    if url is UNSET or url is None:
        return []
    if not isinstance(url, str) or len(url) > MAX_URL or not _web_address(url):
        return [{"name": "url", "message": "must be an http:// or https:// address"}]
    return []


def _web_address(text: str) -> bool:
    parts = urlsplit(text)
    return parts.scheme in {"http", "https"} and bool(parts.netloc)


def url_values(url: Any) -> tuple[HandleValue, ...]:
    if not isinstance(url, str):
        return ()
    return (HandleValue(index=URL_INDEX, type="URL", format="string", value=url),)


async def template_of(session: AsyncSession, record: Record) -> Template | None:
    """The template (version) a record was registered against, when it is on this node
    (one written through the Handle API may name a template this node does not have)."""
    return await conformance.template_of(session, record.values)


class TemplatesOf:
    """The templates of the records one answer shows, each looked up once."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.found: dict[str | None, Template | None] = {}

    async def __call__(self, record: Record | None) -> Template | None:
        if record is None:
            return None
        reference = template_reference(record.values)
        if reference not in self.found:
            self.found[reference] = await template_of(self.session, record)
        return self.found[reference]


async def identifier_view(
    session: AsyncSession, record: Record, template: Template | None, principal: Principal
) -> dict[str, Any]:
    """The identifier as the API answers it: attributes by name with labels, and its values
    (restricted ones only for callers who may read them)."""
    privileged = await can_read_restricted(session, principal, parse_handle(record.handle))
    view = record.readable_by_admin() if privileged else record.public()
    url = view.first("URL")
    out: dict[str, Any] = {
        "handle": record.handle,
        "template": None,
        "url": url.value if url is not None else None,
        "attributes": {},
        "values": [value_json(v) for v in view.values],
    }
    if template is None:
        return out
    out["template"] = {
        "id": template.id,
        "version": template.version,
        "title": {"zh": template.title_zh, "en": template.title_en},
    }
    out["attributes"] = attributes_view(view, template)
    return out


def attributes_view(record: Record, template: Template | None) -> dict[str, Any]:
    """The template attributes ``record`` holds, by name, each with its value as the JSON type
    its item declares and its labels: how every read path of the API shows them."""
    if template is None:
        return {}
    held = attributes_of(template, record.values)
    return {
        item.name: attribute_view(item.index, held[item.name], template)
        for item in template.items
        if item.name in held
    }


def attribute_view(index: int, value: HandleValue, template: Template) -> dict[str, Any]:
    item = template.at(index)
    assert item is not None
    return {
        "value": json_value(item, value.value),
        "label_zh": item.label_zh,
        "label_en": item.label_en,
        "type": item.type,
        "visibility": "public" if value.public_read else "restricted",
        "index": index,
    }


def labelled_rows(record: Record, template: Template) -> Sequence[dict[str, Any]]:
    """Template attributes of a (public) record, for the proxy page."""
    held = attributes_of(template, record.values)
    return [
        {"label_zh": item.label_zh, "label_en": item.label_en, "value": held[item.name].value}
        for item in template.items
        if item.name in held
    ]
