"""Templates on this node: the bundled ones, the operator's and each enterprise's own.

Who sees what: node templates (bare ids like ``food.batch``) are for everyone; an
enterprise's templates (``<prefix>/<name>``) only for that enterprise and the operator. Every
template is also a record, ``<owner prefix>/META_<name>``: index 1 names the latest version,
index 10000+N holds version N's definition as JSON (restricted for an enterprise's own).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import ADMIN_SUFFIX, Principal
from app.errors import AuthenticationRequired, InvalidTemplate, PermissionDenied, TemplateNotFound
from app.registry import clock
from app.registry.identifiers.handles import (
    ADMIN_INDEX,
    authorize_write,
    node_admin_value,
    write_system_record,
)
from app.registry.templates.attributes import PUBLIC_PERMISSIONS, RESTRICTED_PERMISSIONS, check
from app.registry.templates.bundled import BUNDLED, BUNDLED_VERSION
from app.registry.templates.definitions import (
    Template,
    check_successor,
    parse_template,
    split_reference,
    template_id,
    template_json,
)
from app.storage import templates as repo
from app.storage.models import TemplateRow
from resolver.identifier import Handle
from resolver.values import HandleValue

META_PREFIX = "META_"
DEFINITION_INDEX = 10000


def _template(row: TemplateRow) -> Template:
    return parse_template(row.definition, version=row.version)


def may_use(principal: Principal, template: Template) -> bool:
    owner = template.owner_prefix
    return owner is None or principal.is_operator or principal.owns(owner)


async def find(session: AsyncSession, principal: Principal, reference: str) -> Template:
    """The template named ``<id>`` (latest version) or ``<id>@<version>``, if the caller may
    use it."""
    try:
        name, number = split_reference(reference)
    except InvalidTemplate as exc:
        raise TemplateNotFound(f"no template {reference!r}: {exc.message}") from exc
    row = await repo.version(session, name, number)
    if row is None or not may_use(principal, template := _template(row)):
        which = f"{name} version {number}" if number is not None else name
        raise TemplateNotFound(
            f"no template {which} on this node (GET /api/v1/templates lists them)"
        )
    return template


async def list_latest(session: AsyncSession, principal: Principal) -> list[Template]:
    """The latest version of every template the caller may use."""
    owners = None if principal.is_operator else principal.prefixes
    latest: dict[str, TemplateRow] = {}
    for row in await repo.visible(session, owners):
        latest[row.id] = row  # ordered by version: the last one wins
    return [_template(row) for row in latest.values()]


async def create(
    session: AsyncSession, raw: Any, *, principal: Principal, node_prefix: str
) -> Template:
    """Add a template, or the next version of an existing one (which keeps all its items)."""
    if principal.is_anonymous:
        raise AuthenticationRequired("adding a template needs credentials (Bearer <token>)")
    if not isinstance(raw, Mapping):
        raise InvalidTemplate("the body must be a JSON object describing the template")
    name = template_id(str(raw.get("id", "")))
    owner, _, short = name.rpartition("/")
    if not owner and not principal.is_operator:
        raise PermissionDenied(
            "node-wide templates are added by the operator; an enterprise adds its own as "
            f"<its prefix>/{short}"
        )
    if owner:
        await authorize_write(
            session, principal, Handle(owner, META_PREFIX + short), node_prefix=node_prefix
        )
    earlier = await repo.versions(session, name)
    number = earlier[-1].version + 1 if earlier else 1
    if raw.get("version", number) != number:
        raise InvalidTemplate(f"the next version of {name} is {number}")
    if not isinstance(raw.get("example"), Mapping) or not raw["example"]:
        raise InvalidTemplate(
            "example is required: attribute values that satisfy the template (the docs show "
            "it and anyone trying the API starts from it)"
        )
    template = parse_template({**raw, "id": name}, version=number)
    if earlier:
        check_successor(_template(earlier[-1]), template)
    example = check(template, template.example)
    if example.problems:
        wrong = "; ".join(f"{p['name']} {p['message']}" for p in example.problems)
        raise InvalidTemplate(f"the example does not satisfy the template: {wrong}")
    await _store(session, template, node_prefix=node_prefix)
    return template


async def _store(session: AsyncSession, template: Template, *, node_prefix: str) -> None:
    if not await repo.add(
        session,
        template_id=template.id,
        number=template.version,
        owner_prefix=template.owner_prefix,
        definition=template_json(template),
        now=clock.now(),
    ):
        raise InvalidTemplate(
            f"version {template.version} of {template.id} was added meanwhile; send it again"
        )
    await _publish(session, template.id, node_prefix=node_prefix)


async def set_item_disabled(
    session: AsyncSession,
    reference: str,
    item_name: str,
    *,
    disabled: bool,
    principal: Principal,
    node_prefix: str,
) -> Template:
    """Disable (or enable again) an item in every version of a template. Identifiers keep the
    values they hold; new registrations and changes may no longer set it."""
    if principal.is_anonymous:
        raise AuthenticationRequired("changing a template needs credentials (Bearer <token>)")
    latest = await find(session, principal, reference)
    if latest.owner_prefix is None and not principal.is_operator:
        raise PermissionDenied("only the operator changes node templates")
    if not principal.active:
        raise PermissionDenied("this enterprise is disabled; its writes are refused")
    if latest.item(item_name) is None:
        raise TemplateNotFound(f"template {latest.id} has no item {item_name!r}")
    for row in await repo.versions(session, latest.id):
        version = _template(row)
        if version.item(item_name) is not None:
            changed = version.with_disabled(item_name, disabled)
            await repo.change(session, row.id, row.version, template_json(changed))
    await _publish(session, latest.id, node_prefix=node_prefix)
    return await find(session, principal, latest.id)


async def ensure_bundled(session: AsyncSession, *, node_prefix: str) -> int:
    """Install the bundled templates this node does not hold yet; how many were added."""
    added = 0
    for raw in BUNDLED:
        if await repo.version(session, raw["id"], BUNDLED_VERSION) is not None:
            continue
        template = parse_template(raw, version=BUNDLED_VERSION)
        check(template, template.example).or_raise()
        # Several worker processes start at once: the first to insert publishes it.
        if await repo.add(
            session,
            template_id=template.id,
            number=template.version,
            owner_prefix=None,
            definition=template_json(template),
            now=clock.now(),
        ):
            await _publish(session, template.id, node_prefix=node_prefix)
            added += 1
    return added


async def _publish(session: AsyncSession, name: str, *, node_prefix: str) -> None:
    """Write the template's ``META_`` record: the latest version and every definition."""
    templates = [_template(row) for row in await repo.versions(session, name)]
    latest = templates[-1]
    owner = latest.owner_prefix
    permissions = PUBLIC_PERMISSIONS if owner is None else RESTRICTED_PERMISSIONS
    admin = (
        node_admin_value(node_prefix, index=100)
        if owner is None
        else HandleValue(
            index=100,
            type="HS_ADMIN",
            format="admin",
            value={
                "handle": f"{owner}/{ADMIN_SUFFIX}",
                "index": ADMIN_INDEX,
                "permissions": "111111111111",
            },
        )
    )
    values = [
        HandleValue(
            index=1,
            type="TEMPLATE_LATEST",
            format="string",
            value=latest.reference,
            permissions=permissions,
        ),
        admin,
        *(
            HandleValue(
                index=DEFINITION_INDEX + t.version,
                type="TEMPLATE_DEFINITION",
                format="string",
                value=orjson.dumps(template_json(t)).decode(),
                permissions=permissions,
            )
            for t in templates
        ),
    ]
    handle = meta_handle(latest, node_prefix=node_prefix)
    await write_system_record(
        session, handle=str(handle), prefix=handle.prefix, values=values, now=clock.now()
    )


def meta_handle(template: Template, *, node_prefix: str) -> Handle:
    """``<node prefix>/META_<id>`` for node templates, ``<prefix>/META_<name>`` for others."""
    owner, _, short = template.id.rpartition("/")
    return Handle(owner or node_prefix, META_PREFIX + short)
