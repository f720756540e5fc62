"""SQL for identifiers: the writer's locked reads and writes, one by one and set-based (the
resolver's reads are in ``reads.py``, idempotency keys in ``idempotency.py``)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, text, update
from sqlalchemy import insert as insert_rows
from sqlalchemy.ext.asyncio import AsyncSession

from app.storage import history as history_repo
from app.storage.attributes import (
    LOOKUP_SLICE,
    ClaimKey,
    claim_many,
    forget_record,
    index_record,
    index_rows,
    release_claims,
)
from app.storage.conflicts import insert_new
from app.storage.copy import is_postgres, raw_connection
from app.storage.invalidation import touched
from app.storage.models import HandleRow
from app.storage.new_records import NewRecord
from app.storage.outages import guard


async def lock(session: AsyncSession, handle: str) -> list[dict[str, Any]] | None:
    """The stored values, locked against other writers until the transaction ends."""
    return (
        await session.execute(
            select(HandleRow.values).where(HandleRow.handle == handle).with_for_update()
        )
    ).scalar_one_or_none()


async def insert(
    session: AsyncSession,
    *,
    handle: str,
    prefix: str,
    values: list[dict[str, Any]],
    now: datetime,
    actor: str,
    history: bool = True,
) -> bool:
    """Create the row; False when a concurrent writer created it first.

    Every write (this, :func:`replace`, :func:`remove`) keeps the reference index and, unless
    ``history=False`` (device liveness updates), a history entry in the same transaction.
    """
    statement = (
        insert_new(session, HandleRow)
        .values(handle=handle, prefix=prefix, values=values, created_at=now, updated_at=now)
        .returning(HandleRow.handle)
    )
    if (await session.execute(statement)).first() is None:
        return False
    await index_record(session, handle, values, fresh=True)
    await touched(session, [handle])
    await history_repo.index_references(session, handle, values)
    if history:
        await history_repo.record(
            session,
            handle=handle,
            operation="create",
            values=values,
            changed=history_repo.changed_indexes((), values),
            actor=actor,
            at=now,
        )
    return True


async def replace(
    session: AsyncSession,
    *,
    handle: str,
    values: list[dict[str, Any]],
    now: datetime,
    actor: str,
    history: bool = True,
    before: list[dict[str, Any]] | None = None,
) -> None:
    """Replace the values of an existing row (which the caller holds locked).

    ``before``: the values the caller read under its lock (read again when not given). A write
    that changes nothing records no history entry (a retried PUT is not a change).
    """
    if history and before is None:
        before = await lock(session, handle)
    await session.execute(
        update(HandleRow).where(HandleRow.handle == handle).values(values=values, updated_at=now)
    )
    await index_record(session, handle, values, fresh=False)
    await touched(session, [handle])
    await history_repo.index_references(session, handle, values)
    if history and before is not None:
        changed = history_repo.changed_indexes(before, values)
        if changed:
            await history_repo.record(
                session,
                handle=handle,
                operation="update",
                values=values,
                changed=changed,
                actor=actor,
                at=now,
            )


async def remove(
    session: AsyncSession,
    handle: str,
    *,
    now: datetime,
    actor: str,
    history: bool = True,
    before: list[dict[str, Any]] | None = None,
) -> bool:
    """Delete the row. Its history stays; the delete entry holds the values it had
    (``before``, as the caller read them under its lock, or read again here)."""
    if history and before is None:
        before = await lock(session, handle)
    result = await session.execute(delete(HandleRow).where(HandleRow.handle == handle))
    await forget_record(session, handle)
    await touched(session, [handle])
    await history_repo.drop_references(session, handle)
    if history and before is not None:
        await history_repo.record(
            session,
            handle=handle,
            operation="delete",
            values=before,
            changed=history_repo.changed_indexes(before, ()),
            actor=actor,
            at=now,
        )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def stored_many(
    session: AsyncSession, handles: Collection[str]
) -> dict[str, list[dict[str, Any]]]:
    """The stored values of each of ``handles`` that exists (looked up in slices that fit any
    driver's limits)."""
    wanted = list(handles)
    found: dict[str, list[dict[str, Any]]] = {}
    for start in range(0, len(wanted), LOOKUP_SLICE):
        part = wanted[start : start + LOOKUP_SLICE]
        rows = await session.execute(
            select(HandleRow.handle, HandleRow.values).where(HandleRow.handle.in_(part))
        )
        found.update((h, v) for h, v in rows.all())
    return found


@dataclass(frozen=True, slots=True)
class Inserted:
    """What :func:`insert_many` did: created handles, handles that already existed, and the
    unique values other identifiers hold (handle -> [(key, holder)])."""

    created: set[str]
    existing: set[str]
    clashes: dict[str, list[tuple[ClaimKey, str]]]


async def insert_many(
    session: AsyncSession, records: Sequence[NewRecord], *, now: datetime, actor: str
) -> Inserted:
    """Create many records at once (never replacing one), with their unique claims,
    searchable attributes, history and references; the only place bulk loads write records.

    Set-based: on PostgreSQL the rows are COPied into a temporary table and inserted with
    ``ON CONFLICT DO NOTHING``, so a handle created meanwhile by another writer is reported
    as existing rather than failing the whole chunk. A record whose unique value is held
    elsewhere, or whose handle exists, is not written and claims nothing.
    """
    clashes = await claim_many(
        session, [(key, r.handle, index) for r in records for key, index in r.claims]
    )
    candidates = [r for r in records if r.handle not in clashes]
    if is_postgres(session):
        created = await _copy_new_handles(session, candidates, now)
    else:
        created = await _insert_new_handles(session, candidates, now)
    existing = {r.handle for r in candidates} - created
    await release_claims(
        session,
        [(key, r.handle) for r in records if r.handle not in created for key, _ in r.claims],
    )
    new = [r for r in candidates if r.handle in created]
    await index_rows(session, [row for r in new for row in r.searchable])
    await history_repo.record_created(session, new, actor=actor, at=now)
    await touched(session, [r.handle for r in new])
    return Inserted(created, existing, clashes)


async def _copy_new_handles(
    session: AsyncSession, records: Sequence[NewRecord], now: datetime
) -> set[str]:
    if not records:
        return set()
    # Runs through SQLAlchemy first, which opens the transaction the raw COPY then joins.
    await session.execute(text(_STAGING))
    driver = await raw_connection(session)
    with guard(session):
        await driver.copy_records_to_table(
            "bulk_handles",
            records=[(r.handle, r.prefix, r.document) for r in records],
            columns=["handle", "prefix", "values"],
        )
        rows = await driver.fetch(_FROM_STAGING, now)
        await driver.execute("TRUNCATE bulk_handles")
    return {row[0] for row in rows}


_STAGING = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS bulk_handles "
    "(handle text, prefix text, values text) ON COMMIT DELETE ROWS"
)
_FROM_STAGING = (
    "INSERT INTO handles (handle, prefix, values, created_at, updated_at) "
    "SELECT handle, prefix, values::jsonb, $1, $1 FROM bulk_handles "
    "ON CONFLICT (handle) DO NOTHING RETURNING handle"
)


async def _insert_new_handles(
    session: AsyncSession, records: Sequence[NewRecord], now: datetime
) -> set[str]:
    """SQLite: one writer at a time (BEGIN IMMEDIATE), so what is absent now stays absent."""
    taken = set(await stored_handles(session, [r.handle for r in records]))
    fresh = [r for r in records if r.handle not in taken]
    if fresh:
        await session.execute(
            insert_rows(HandleRow),
            [
                {
                    "handle": r.handle,
                    "prefix": r.prefix,
                    "values": r.values,
                    "created_at": now,
                    "updated_at": now,
                }
                for r in fresh
            ],
        )
    return {r.handle for r in fresh}


async def stored_handles(session: AsyncSession, handles: Sequence[str]) -> list[str]:
    """Which of ``handles`` exist (looked up in slices that fit any driver's limits)."""
    found: list[str] = []
    for start in range(0, len(handles), LOOKUP_SLICE):
        part = handles[start : start + LOOKUP_SLICE]
        rows = await session.execute(select(HandleRow.handle).where(HandleRow.handle.in_(part)))
        found += rows.scalars()
    return found
