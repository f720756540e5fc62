"""SQL for template attributes: the searchable copy of each identifier's attributes, and the
claims that keep unique items unique.

The searchable rows are derived from the record itself (its ``TEMPLATE`` value at 1001 and its
string values from index 2000) on every write of ``app/storage/handles.py``, so whichever path
writes a record — this node's API, the Handle API, a bulk load — search stays in step.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import and_, delete, insert, select, tuple_
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.storage.copy import copy_rows, is_postgres
from app.storage.models import AttributeValue, UniqueAttributeValue

TEMPLATE_INDEX = 1001
TEMPLATE_TYPE = "TEMPLATE"
FIRST_ATTRIBUTE_INDEX = 2000
# Characters; longer values (written through the Handle API) are not searchable. With the
# other key columns this keeps an index entry under PostgreSQL's ~2,700-byte B-tree limit.
MAX_SEARCHABLE = 400
ClaimKey = tuple[str, str, str]  # template id, item name, value


def attribute_rows(handle: str, values: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The searchable rows of a record (pure: a bulk load inserts these set-based)."""
    values = list(values)
    marker = next(
        (v for v in values if v["index"] == TEMPLATE_INDEX and v["type"] == TEMPLATE_TYPE), None
    )
    if marker is None or not isinstance(marker["data"]["value"], str):
        return []
    reference = marker["data"]["value"]
    template_id = reference.rpartition("@")[0] or reference
    rows = [_row(handle, marker, template_id, name=TEMPLATE_TYPE, value=template_id)]
    for v in values:
        text = v["data"]["value"]
        if (
            v["index"] >= FIRST_ATTRIBUTE_INDEX
            and v["data"]["format"] == "string"
            and isinstance(text, str)
            and len(text) <= MAX_SEARCHABLE
        ):
            rows.append(_row(handle, v, template_id, name=v["type"], value=text))
    return rows


def _row(
    handle: str, v: Mapping[str, Any], template_id: str, *, name: str, value: str
) -> dict[str, Any]:
    public = v.get("permissions", "1110")[2] == "1"
    return {
        "handle": handle,
        "value_index": v["index"],
        "template_id": template_id[:130],
        "name": name[:128],
        "value": value,
        "restricted": not public,
    }


async def index_record(
    session: AsyncSession, handle: str, values: Sequence[Mapping[str, Any]], *, fresh: bool
) -> None:
    """Bring the searchable rows and unique claims of ``handle`` in line with ``values``."""
    if not fresh:
        await session.execute(delete(AttributeValue).where(AttributeValue.handle == handle))
        await _release_stale_claims(session, handle, values)
    rows = attribute_rows(handle, values)
    if rows:
        await session.execute(insert(AttributeValue), rows)


async def forget_record(session: AsyncSession, handle: str) -> None:
    """A deleted record: no longer searchable, its unique values free again."""
    await session.execute(delete(AttributeValue).where(AttributeValue.handle == handle))
    await session.execute(delete(UniqueAttributeValue).where(UniqueAttributeValue.handle == handle))


async def _release_stale_claims(
    session: AsyncSession, handle: str, values: Sequence[Mapping[str, Any]]
) -> None:
    """A claim lives while its identifier still holds that value at that index."""
    held = {(v["index"], v["data"]["value"]) for v in values if v["data"]["format"] == "string"}
    claims = (
        await session.execute(
            select(UniqueAttributeValue).where(UniqueAttributeValue.handle == handle)
        )
    ).scalars()
    stale = [c for c in claims if (c.value_index, c.value) not in held]
    for claim in stale:
        await session.delete(claim)
    if stale:
        await session.flush()


async def holders(session: AsyncSession, keys: Sequence[ClaimKey]) -> dict[ClaimKey, str]:
    """Which identifier holds each of these unique values (those that are taken)."""
    if not keys:
        return {}
    column = tuple_(
        UniqueAttributeValue.template_id, UniqueAttributeValue.item_name, UniqueAttributeValue.value
    )
    rows = await session.execute(
        select(
            UniqueAttributeValue.template_id,
            UniqueAttributeValue.item_name,
            UniqueAttributeValue.value,
            UniqueAttributeValue.handle,
        ).where(column.in_(keys))
    )
    return {(t, n, v): h for t, n, v, h in rows.all()}


async def claim(session: AsyncSession, key: ClaimKey, *, handle: str, index: int) -> str | None:
    """Claim a unique value for ``handle``; the identifier already holding it, if another.

    Concurrent claims of one value meet at the primary key: the later writer waits for the
    earlier transaction and then fails here, so exactly one of them wins.
    """
    template_id, name, value = key
    try:
        async with session.begin_nested():
            await session.execute(
                insert(UniqueAttributeValue).values(
                    template_id=template_id,
                    item_name=name,
                    value=value,
                    handle=handle,
                    value_index=index,
                )
            )
    except IntegrityError:
        holder = (await holders(session, [key])).get(key)
        return holder if holder != handle else None
    return None


async def search(
    session: AsyncSession,
    *,
    template_id: str,
    criteria: Sequence[tuple[str, str]],
    after: str | None,
    limit: int,
    include_restricted: bool,
) -> list[tuple[str, bool]]:
    """Identifiers of ``template_id`` whose attributes equal every ``(name, value)``, in handle
    order after ``after``; each with whether a restricted value took part in the match."""
    base = aliased(AttributeValue)
    query = select(base.handle, base.restricted).where(
        base.template_id == template_id,
        base.name == TEMPLATE_TYPE,
        base.value == template_id,
    )
    for name, value in criteria:
        match = aliased(AttributeValue)
        query = query.join(
            match,
            and_(
                match.handle == base.handle,
                match.template_id == template_id,
                match.name == name,
                match.value == value,
            ),
        ).add_columns(match.restricted)
        if not include_restricted:
            query = query.where(match.restricted.is_(False))
    if not include_restricted:
        query = query.where(base.restricted.is_(False))
    if after is not None:
        query = query.where(base.handle > after)
    rows = await session.execute(query.order_by(base.handle).limit(limit))
    return [(row[0], any(row[1:])) for row in rows.all()]


# --- bulk loads (app/storage/handles.py: insert_many) ---

LOOKUP_SLICE = 5_000  # keys per lookup: within SQLite's limit on bound parameters


async def claim_many(
    session: AsyncSession, wanted: Sequence[tuple[ClaimKey, str, int]]
) -> dict[str, list[tuple[ClaimKey, str]]]:
    """Claim unique values for many identifiers ((key, handle, index) each); the clashes,
    handle -> [(key, holder)], where another identifier holds the value.

    Claims that meet at the primary key (a concurrent writer) lose and are reported too, so
    exactly one identifier ever holds a value.
    """
    if not wanted:
        return {}
    keys = [key for key, _, _ in wanted]
    held = await _holders_in_slices(session, keys)
    free = [(k, h, i) for k, h, i in wanted if k not in held]
    if free:
        statement = _insert_ignoring_conflicts(session)
        await session.execute(
            statement,
            [
                {"template_id": t, "item_name": n, "value": v, "handle": h, "value_index": i}
                for (t, n, v), h, i in free
            ],
        )
        held = await _holders_in_slices(session, keys)
    clashes: dict[str, list[tuple[ClaimKey, str]]] = {}
    for key, handle, _ in wanted:
        holder = held.get(key)
        if holder is not None and holder != handle:
            clashes.setdefault(handle, []).append((key, holder))
    return clashes


def _insert_ignoring_conflicts(session: AsyncSession) -> Any:
    if is_postgres(session):
        return postgresql_insert(UniqueAttributeValue).on_conflict_do_nothing()
    return sqlite_insert(UniqueAttributeValue).on_conflict_do_nothing()


async def _holders_in_slices(
    session: AsyncSession, keys: Sequence[ClaimKey]
) -> dict[ClaimKey, str]:
    held: dict[ClaimKey, str] = {}
    unique = list(dict.fromkeys(keys))
    for start in range(0, len(unique), LOOKUP_SLICE):
        held.update(await holders(session, unique[start : start + LOOKUP_SLICE]))
    return held


async def release_claims(session: AsyncSession, claims: Sequence[tuple[ClaimKey, str]]) -> None:
    """Give up values claimed for identifiers a bulk load did not create after all."""
    for (template_id, name, value), handle in claims:
        await session.execute(
            delete(UniqueAttributeValue).where(
                UniqueAttributeValue.template_id == template_id,
                UniqueAttributeValue.item_name == name,
                UniqueAttributeValue.value == value,
                UniqueAttributeValue.handle == handle,
            )
        )


async def index_rows(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """Searchable rows of freshly created records (from :func:`attribute_rows`), set-based:
    COPY on PostgreSQL."""
    if not rows:
        return
    if is_postgres(session):
        columns = list(rows[0])
        await copy_rows(
            session, AttributeValue.__tablename__, columns, [tuple(r.values()) for r in rows]
        )
    else:
        await session.execute(insert(AttributeValue), rows)
