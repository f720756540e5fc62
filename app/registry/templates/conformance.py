"""Records kept to their template, whichever door writes them.

An identifier registered against a template holds ``TEMPLATE`` = ``<id>@<version>`` at index
1001. ``/api/v1/identifiers`` checks its attributes by name; a write of raw Handle values
(``PUT``/``DELETE /api/handles/...`` and the Handle protocol's create, add, modify and remove)
is checked here, by the same rules (:func:`app.registry.templates.attributes.check`) and the same
unique claims. A record without a ``TEMPLATE`` value, or naming a template this node does not
have, is free-form.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import Principal
from app.errors import InvalidTemplate, TemplateViolation
from app.registry.templates.attributes import (
    Checked,
    Claim,
    Problem,
    attributes_of,
    check,
    template_reference,
)
from app.registry.templates.definitions import Template, parse_template, split_reference
from app.storage import attributes as claims_repo
from app.storage import templates as templates_repo
from resolver.values import HandleValue


async def template_at(session: AsyncSession, reference: str) -> Template | None:
    """The template ``<id>`` (latest version) or ``<id>@<version>``, if this node has it."""
    try:
        name, number = split_reference(reference)
    except InvalidTemplate:
        return None
    row = await templates_repo.version(session, name, number)
    return None if row is None else parse_template(row.definition, version=row.version)


async def template_of(session: AsyncSession, values: Sequence[HandleValue]) -> Template | None:
    """The template (version) a record was registered against, when it is on this node."""
    reference = template_reference(values)
    return None if reference is None else await template_at(session, reference)


async def conform(
    session: AsyncSession,
    handle: str,
    values: Sequence[HandleValue],
    *,
    existing: Sequence[HandleValue],
    principal: Principal,
) -> list[HandleValue]:
    """``values``, the whole record about to be stored, checked against its template: its
    attributes as the template's canonical text (``12.50`` -> ``12.5``), unique ones claimed
    for ``handle``; or :class:`TemplateViolation` naming every failing field. ``existing``
    (the record before this write) keeps attributes of since disabled items acceptable as
    long as they do not change."""
    template = await template_of(session, values)
    if template is None:
        await _not_dropped(session, values, existing)
        return list(values)
    held = attributes_of(template, values)
    before = attributes_of(template, existing)
    checked = check(
        template,
        {name: v.value for name, v in held.items()},
        visibility={n: "public" if v.public_read else "restricted" for n, v in held.items()},
        unchanged=[n for n, v in held.items() if n in before and before[n].value == v.value],
    )
    await claim_unique(session, checked, handle, principal, _misplaced(template, values))
    attribute_indexes = {item.index for item in template.items if item.name in held}
    texts = {v.index: v.value for v in checked.values if v.index in attribute_indexes}
    return [replace(v, value=texts[v.index]) if v.index in texts else v for v in values]


async def _not_dropped(
    session: AsyncSession, values: Sequence[HandleValue], existing: Sequence[HandleValue]
) -> None:
    """A record may not shed its ``TEMPLATE`` value while it still holds attributes of that
    template (which would make them free-form)."""
    before = await template_of(session, existing)
    if before is None:
        return
    items = {item.index: item.name for item in before.items}
    held = sorted({items[v.index] for v in values if v.index in items})
    if held:
        raise TemplateViolation(
            [
                {
                    "name": "TEMPLATE",
                    "message": f"index 1001 names template {before.reference}, which "
                    f"{', '.join(held)} belong to; remove them too, or delete the identifier",
                }
            ]
        )


def _misplaced(template: Template, values: Sequence[HandleValue]) -> list[Problem]:
    """Values at an item's index under another type: that index is the item's."""
    problems = []
    for v in values:
        item = template.at(v.index)
        if item is not None and v.type != item.name:
            problems.append(
                {
                    "name": item.name,
                    "message": f"index {v.index} holds item {item.name} of template "
                    f"{template.id}, not a value of type {v.type!r}",
                }
            )
    return problems


async def claim_unique(
    session: AsyncSession,
    checked: Checked,
    handle: str,
    principal: Principal,
    extra: list[Problem],
) -> None:
    """Claim every unique value for ``handle``; refuse with every problem found, at once."""
    problems = [*checked.problems, *extra]
    keys = {(c.template_id, c.item_name, c.value): c for c in checked.claims}
    taken = await claims_repo.holders(session, list(keys))
    problems += [
        taken_problem(keys[k], holder, principal) for k, holder in taken.items() if holder != handle
    ]
    if problems:
        raise TemplateViolation(problems)
    # A fixed order, so two writers claiming the same values cannot deadlock.
    for key in sorted(keys):
        holder = await claims_repo.claim(session, key, handle=handle, index=keys[key].index)
        if holder is not None:
            problems.append(taken_problem(keys[key], holder, principal))
    if problems:
        raise TemplateViolation(problems)


def taken_problem(claim: Claim, holder: str, principal: Principal) -> Problem:
    # Name the holder only to a caller who may write it; others learn only that it is taken.
    owner = holder.partition("/")[0]
    where = f" by {holder}" if principal.is_operator or principal.owns(owner) else ""
    return {
        "name": claim.item_name,
        "message": f"{claim.value!r} is already registered{where}; it must be unique in "
        f"template {claim.template_id}",
    }
