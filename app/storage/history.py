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

import orjson
from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.storage import outbox
from app.storage.copy import copy_rows, is_postgres
from app.storage.models import HandleReference, HistoryEntry
from app.storage.new_records import NewRecord, targets_of

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
    session: AsyncSession, created: Sequence[NewRecord], *, actor: str, at: datetime
) -> None:
    """History entries, reference-index rows and events for records a bulk load just
    created, in a few statements for the lot. An identifier deleted before keeps its old
    entries and continues their numbering."""
    if not created:
        return
    earlier = await _last_versions(session, [r.handle for r in created])
    changed = {r.handle: sorted(v["index"] for v in r.values) for r in created}  # all new
    if is_postgres(session):
        await _copy_created(session, created, earlier, changed, actor=actor, at=at)
    else:
        await session.execute(
            insert(HistoryEntry),
            [
                {
                    "handle": r.handle,
                    "version": earlier.get(r.handle, 0) + 1,
                    "operation": "create",
                    "values": r.values,
                    "changed": changed[r.handle],
                    "actor": actor,
                    "at": at,
                }
                for r in created
            ],
        )
        references = [{"source": r.handle, "target": t} for r in created for t in r.targets]
        if references:
            await session.execute(insert(HandleReference), references)
    await outbox.add_many(
        session,
        [(event_kind("create"), event_data(r.handle, changed[r.handle])) for r in created],
        at=at,
    )


async def _last_versions(session: AsyncSession, names: Sequence[str]) -> dict[str, int]:
    """The last history version of each of ``names`` that has one (deleted before)."""
    if is_postgres(session):
        # One index probe per name, whatever the planner's statistics say: with none yet (a
        # first bulk load; autovacuum off) an IN list of 1,000 names was planned as a scan of
        # the whole history, per slice, so a million-row load slowed to a crawl.
        rows = await session.execute(_LAST_VERSIONS, {"names": list(names)})
        return {name: version for name, version in rows.all() if version is not None}
    earlier: dict[str, int] = {}
    for start in range(0, len(names), _SLICE):
        rows = await session.execute(
            select(HistoryEntry.handle, func.max(HistoryEntry.version))
            .where(HistoryEntry.handle.in_(names[start : start + _SLICE]))
            .group_by(HistoryEntry.handle)
        )
        earlier.update({handle: version for handle, version in rows.all()})
    return earlier


_LAST_VERSIONS = text(
    "SELECT name, (SELECT max(version) FROM handle_history WHERE handle = name) "
    "FROM unnest(CAST(:names AS text[])) AS name"
)


async def _copy_created(
    session: AsyncSession,
    created: Sequence[NewRecord],
    earlier: Mapping[str, int],
    changed: Mapping[str, list[int]],
    *,
    actor: str,
    at: datetime,
) -> None:
    """PostgreSQL: the same rows by COPY (JSON columns go as their text)."""
    await copy_rows(
        session,
        HistoryEntry.__tablename__,
        ("handle", "version", "operation", "values", "changed", "actor", "at"),
        [
            (
                r.handle,
                earlier.get(r.handle, 0) + 1,
                "create",
                r.document,
                orjson.dumps(changed[r.handle]).decode(),
                actor,
                at,
            )
            for r in created
        ],
    )
    await copy_rows(
        session,
        HandleReference.__tablename__,
        ("source", "target"),
        [(r.handle, t) for r in created for t in r.targets],
    )


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


async def referrer_count(session: AsyncSession, target: str) -> int:
    """How many identifiers reference ``target`` (what lies directly below it in a trace)."""
    count = await session.scalar(
        select(func.count()).select_from(HandleReference).where(HandleReference.target == target)
    )
    return int(count or 0)
