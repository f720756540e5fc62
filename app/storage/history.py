"""SQL for identifier history and the reference index, written by ``app/storage/handles.py``
in the transaction of every change.

Every history entry is also an event for the top-level node (``app/storage/outbox.py``),
written here so one hook covers every path that changes identity data; writes without
history (device liveness) report nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.storage import outbox
from app.storage.models import HandleReference, HistoryEntry

Values = list[dict[str, Any]]
_SLICE = 1000  # handles per IN (...) lookup: within every driver's parameter limit


def changed_indexes(
    before: Iterable[Mapping[str, Any]], after: Iterable[Mapping[str, Any]]
) -> list[int]:
    """Indexes added, removed or changed. Unchanged values keep their timestamps, so comparing
    the stored documents is enough."""
    old = {v["index"]: v for v in before}
    new = {v["index"]: v for v in after}
    return sorted(i for i in old.keys() | new.keys() if old.get(i) != new.get(i))


async def record(
    session: AsyncSession,
    *,
    handle: str,
    operation: str,
    values: Values,
    changed: list[int],
    actor: str,
    at: datetime,
) -> None:
    """Append a history entry, numbered next in one statement. Writers hold the identifier's
    row (or its insert) here, so no concurrent writer can take the same number."""
    version = select(func.coalesce(func.max(HistoryEntry.version), 0) + 1).where(
        HistoryEntry.handle == handle
    )
    await session.execute(
        insert(HistoryEntry).values(
            handle=handle,
            version=version.scalar_subquery(),
            operation=operation,
            values=values,
            changed=changed,
            actor=actor,
            at=at,
        )
    )
    await outbox.add(session, kind=event_kind(operation), data=event_data(handle, changed), at=at)


def event_kind(operation: str) -> str:
    return f"identifier.{operation}"


def event_data(handle: str, changed: list[int]) -> dict[str, Any]:
    """What the top-level node learns of a change: which identifier and which value indexes.
    Not the values: restricted values never leave the node, public ones resolve from it."""
    return {"handle": handle, "changed": changed}


async def record_created(
    session: AsyncSession, created: Sequence[tuple[str, Values]], *, actor: str, at: datetime
) -> None:
    """History entries and reference-index rows for records a bulk load just created, in a
    few statements for the lot. An identifier deleted before keeps its old entries and
    continues their numbering."""
    if not created:
        return
    names = [handle for handle, _ in created]
    earlier: dict[str, int] = {}
    for start in range(0, len(names), _SLICE):
        rows = await session.execute(
            select(HistoryEntry.handle, func.max(HistoryEntry.version))
            .where(HistoryEntry.handle.in_(names[start : start + _SLICE]))
            .group_by(HistoryEntry.handle)
        )
        earlier.update({handle: version for handle, version in rows.all()})
    new_entries: list[dict[str, Any]] = [
        {
            "handle": handle,
            "version": earlier.get(handle, 0) + 1,
            "operation": "create",
            "values": values,
            "changed": changed_indexes((), values),
            "actor": actor,
            "at": at,
        }
        for handle, values in created
    ]
    await session.execute(insert(HistoryEntry), new_entries)
    await outbox.add_many(
        session,
        [(event_kind("create"), event_data(r["handle"], r["changed"])) for r in new_entries],
        at=at,
    )
    references = [
        {"source": handle, "target": target}
        for handle, values in created
        for target in sorted(targets_of(handle, values))
    ]
    if references:
        await session.execute(insert(HandleReference), references)


async def entries(session: AsyncSession, handle: str) -> list[HistoryEntry]:
    """Every recorded change of ``handle``, oldest first."""
    rows = await session.execute(
        select(HistoryEntry).where(HistoryEntry.handle == handle).order_by(HistoryEntry.version)
    )
    return list(rows.scalars())


async def latest_before(session: AsyncSession, handle: str, at: datetime) -> HistoryEntry | None:
    """The last change of ``handle`` made at or before ``at``."""
    return (
        await session.execute(
            select(HistoryEntry)
            .where(HistoryEntry.handle == handle, HistoryEntry.at <= at.astimezone(UTC))
            .order_by(HistoryEntry.version.desc())
            .limit(1)
        )
    ).scalar_one_or_none()


def targets_of(handle: str, values: Iterable[Mapping[str, Any]]) -> set[str]:
    return {r["handle"] for v in values for r in v.get("references", ())} - {handle}


async def index_references(session: AsyncSession, handle: str, values: Values) -> None:
    """Make the index hold exactly the identifiers ``handle``'s values reference."""
    wanted = targets_of(handle, values)
    present = set(
        (
            await session.execute(
                select(HandleReference.target).where(HandleReference.source == handle)
            )
        ).scalars()
    )
    gone = present - wanted
    if gone:
        await session.execute(
            delete(HandleReference).where(
                HandleReference.source == handle, HandleReference.target.in_(gone)
            )
        )
    added = wanted - present
    if added:
        await session.execute(
            insert(HandleReference), [{"source": handle, "target": t} for t in sorted(added)]
        )


async def drop_references(session: AsyncSession, handle: str) -> None:
    await session.execute(delete(HandleReference).where(HandleReference.source == handle))


async def referrers(session: AsyncSession, targets: Collection[str]) -> list[tuple[str, str]]:
    """``(source, target)`` for every indexed reference to one of ``targets``."""
    if not targets:
        return []
    rows = await session.execute(
        select(HandleReference.source, HandleReference.target)
        .where(HandleReference.target.in_(targets))
        .order_by(HandleReference.target, HandleReference.source)
    )
    return [(s, t) for s, t in rows.all()]
