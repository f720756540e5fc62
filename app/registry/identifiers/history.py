"""History of identifiers: what a record was at a past time, and its changes as a caller may see
them. Entries are written by the storage write path itself (``app/storage/handles.py``).

A caller sees each entry through the same rule as a resolve: values it may not read are left
out, and so are the indexes of their changes; an update that changed only values hidden from
the caller is not listed at all (its existence would tell that something hidden changed).
Entries are numbered in the list the caller sees.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import Principal
from app.errors import InvalidRequest
from app.registry import clock
from app.registry.identifiers.handles import can_read_restricted
from app.registry.identifiers.templated import TemplatesOf, attributes_view
from app.registry.templates.definitions import Template
from app.storage import history as repo
from app.storage.models import HistoryEntry
from resolver.errors import HandleNotFound
from resolver.identifier import Handle
from resolver.record import Record
from resolver.values import value_json, values_from_stored

# A '+' in a query string arrives as a space: "2026-11-26T12:00:00 08:00".
_SPACED_OFFSET = re.compile(r"(\d) (\d\d(:?\d\d)?)$")


def parse_moment(text: str) -> datetime:
    """An ISO 8601 time for ``?at=``; without an offset it is taken as UTC."""
    cleaned = _SPACED_OFFSET.sub(r"\1+\2", text.strip())
    try:
        moment = datetime.fromisoformat(cleaned)
    except ValueError as exc:
        raise InvalidRequest(
            f"at={text!r} is not an ISO 8601 time; send e.g. 2026-11-26T08:30:00Z"
        ) from exc
    try:
        return clock.in_utc(moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC))
    except ValueError as exc:
        raise InvalidRequest(f"at={text!r}: {exc}") from exc


async def record_at(session: AsyncSession, handle: Handle | str, at: datetime) -> Record | None:
    """The whole record as it was at ``at``; None when it did not exist then (not yet
    created, or deleted). Callers narrow it to what the asker may read."""
    name = str(handle)
    entry = await repo.latest_before(session, name, at)
    if entry is None or entry.operation == "delete":
        return None
    return Record(name, values_from_stored(entry.values))


def not_at(handle: Handle | str, at: datetime) -> HandleNotFound:
    """The error for a time the identifier did not exist at."""
    return HandleNotFound(
        f"handle {handle} did not exist at {clock.handle_timestamp(at)} "
        "(not yet created, or deleted by then)"
    )


@dataclass(frozen=True)
class Change:
    """One change as a caller sees it."""

    version: int
    operation: str
    at: datetime
    actor: str
    changed: list[int]
    record: Record
    template: Template | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "operation": self.operation,
            "at": clock.as_utc(self.at).isoformat(),
            "actor": self.actor,
            "changed": self.changed,
            "attributes": attributes_view(self.record, self.template),
            "values": [value_json(v) for v in self.record.values],
        }


def visible(record: Record, *, privileged: bool) -> Record:
    """The values of ``record`` a caller reads: all it may, or the public ones."""
    return record.readable_by_admin() if privileged else record.public()


async def history_of(
    session: AsyncSession, handle: Handle, *, principal: Principal
) -> list[Change]:
    """Every change of ``handle`` the caller may see, oldest first; a deleted identifier keeps
    its history, ending in a ``delete`` entry that holds the values it had."""
    entries = await repo.entries(session, str(handle))
    if not entries:
        raise HandleNotFound(f"handle {handle} has no history on this node")
    privileged = await can_read_restricted(session, principal, handle)
    return await _changes(entries, privileged=privileged, templates=TemplatesOf(session))


async def _changes(
    entries: Sequence[HistoryEntry], *, privileged: bool, templates: TemplatesOf
) -> list[Change]:
    changes: list[Change] = []
    shown_before: set[int] = set()
    for entry in entries:
        record = visible(
            Record(entry.handle, values_from_stored(entry.values)), privileged=privileged
        )
        shown = {v.index for v in record.values}
        changed = [i for i in entry.changed if i in shown or i in shown_before]
        shown_before = set() if entry.operation == "delete" else shown
        if entry.operation == "update" and not changed:
            continue
        changes.append(
            Change(
                version=len(changes) + 1,
                operation=entry.operation,
                at=entry.at,
                actor=entry.actor,
                changed=changed,
                record=record,
                template=await templates(record),
            )
        )
    return changes
