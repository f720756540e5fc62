"""Finding identifiers by their template attributes, within what the caller may read.

A match that relies on a restricted value counts only for callers who may read that
identifier's restricted values (``can_read_restricted``, the one place that decides it), so
neither the results nor their number reveal restricted values to anyone else.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import Principal
from app.errors import InvalidRequest, TemplateViolation
from app.registry.identifiers.handles import can_read_restricted
from app.registry.identifiers.templated import TemplatesOf, identifier_view
from app.registry.templates import catalog
from app.registry.templates.attributes import canonical_text
from app.registry.templates.definitions import Template
from app.storage import attributes as repo
from app.storage import handles as handles_repo
from resolver.errors import InvalidHandle
from resolver.identifier import parse_handle
from resolver.record import Record
from resolver.values import values_from_stored

MAX_LIMIT = 500
MAX_ROUNDS = 20  # database pages read per request before answering with a cursor


@dataclass(frozen=True, slots=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


async def search(
    session: AsyncSession,
    principal: Principal,
    *,
    template: str,
    criteria: Mapping[str, str],
    limit: int = 50,
    cursor: str | None = None,
) -> Page:
    """Identifiers of ``template`` whose attributes equal ``criteria`` (exact match), in handle
    order, ``limit`` at a time; pass the answer's cursor to continue."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequest(f"limit must be from 1 to {MAX_LIMIT}")
    chosen = await catalog.find(session, principal, template)
    wanted = _criteria(chosen, criteria)
    after = _decode(cursor) if cursor else None
    found: list[str] = []
    batch = max(limit, 50)
    for _ in range(MAX_ROUNDS):
        rows = await repo.search(
            session,
            template_id=chosen.id,
            criteria=wanted,
            after=after,
            limit=batch,
            include_restricted=not principal.is_anonymous,
        )
        for handle, restricted in rows:
            after = handle
            if restricted and not await can_read_restricted(
                session, principal, parse_handle(handle)
            ):
                continue
            found.append(handle)
            if len(found) == limit:
                return await _page(session, principal, found, _encode(handle))
        if len(rows) < batch:
            return await _page(session, principal, found, None)
    return await _page(session, principal, found, _encode(after) if after else None)


def _criteria(template: Template, criteria: Mapping[str, str]) -> list[tuple[str, str]]:
    problems = []
    wanted = []
    for name, raw in criteria.items():
        item = template.item(name)
        if item is None:
            problems.append({"name": name, "message": f"is not an item of {template.id}"})
            continue
        try:
            wanted.append((name, canonical_text(item, raw)))
        except ValueError as exc:
            problems.append({"name": name, "message": str(exc)})
    if problems:
        raise TemplateViolation(problems, "the search names attributes wrongly")
    return wanted


async def _page(
    session: AsyncSession, principal: Principal, handles: list[str], cursor: str | None
) -> Page:
    stored = await handles_repo.stored_many(session, handles)
    templates = TemplatesOf(session)
    items = []
    for handle in handles:
        if handle not in stored:
            continue
        record = Record(handle, values_from_stored(stored[handle]))
        items.append(await identifier_view(session, record, await templates(record), principal))
    return Page(items, cursor)


def _encode(handle: str) -> str:
    return base64.urlsafe_b64encode(handle.encode()).decode().rstrip("=")


def _decode(cursor: str) -> str:
    padded = cursor + "=" * (-len(cursor) % 4)
    try:
        handle = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
        return str(parse_handle(handle))
    except (binascii.Error, UnicodeDecodeError, InvalidHandle) as exc:
        raise InvalidRequest("cursor is not one this node gave out; start without it") from exc
