"""Recalls: an enterprise marks an identifier (a batch, usually) recalled, and everything below
it in the trace answers with the warning, without being rewritten.

The recalled identifier itself carries a ``RECALL`` value at index ``RECALL_INDEX`` (format
string: the reason; its timestamp: when it was recalled), written like any change, so it is
in the identifier's history and its outbox event. The ``recalls`` table indexes them. When the
resolver loads an identifier that is not itself recalled, :class:`RecallingStore` walks up the
references from it (unit -> case -> batch -> raw-material batch, as the trace does) and, when it
meets a recalled one, adds a ``RECALL`` value with the recall's reason and time. Every reference
is followed, public or not, because a recall must reach every unit below the batch; the warning
names the recalled identifier (its ``references``) only when every step of the way there is
public, so a link an enterprise kept private is not shown to an anonymous reader. A recall or
its undo forgets every cached answer in every process (``invalidation.EVERYTHING``), so a
million units reflect it within the cache invalidation bound, with no write to any of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import Principal
from app.errors import InvalidRequest
from app.registry import clock
from app.registry.identifiers.handles import authorize_write, put_record
from app.storage import handles as handles_repo
from app.storage import outbox
from app.storage import recalls as repo
from app.storage.database import Database
from app.storage.invalidation import EVERYTHING, touched
from resolver.cache import ResolverCache
from resolver.engine import Store
from resolver.errors import HandleNotFound
from resolver.identifier import parse_handle
from resolver.record import Record
from resolver.text import first_problem
from resolver.values import HandleValue, Reference, values_from_stored

RECALL_INDEX = 1010
RECALL_TYPE = "RECALL"
MAX_REASON = 400
MAX_DEPTH = 5  # as far up as a trace goes by default (unit, case, pallet, batch, material)


@dataclass(frozen=True)
class RecallView:
    handle: str
    recalled: bool
    reason: str | None
    at: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "handle": self.handle,
            "recalled": self.recalled,
            "reason": self.reason,
            "at": self.at,
        }


def recall_of(record: Record) -> HandleValue | None:
    """The record's ``RECALL`` value (its own, or one the resolver derived), if any."""
    return next((v for v in record.values if v.type == RECALL_TYPE), None)


async def recall(
    session: AsyncSession, handle: str, *, principal: Principal, node_prefix: str, reason: Any
) -> RecallView:
    """Mark ``handle`` recalled (its owner or the operator); repeating it restates the reason."""
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidRequest("reason: say why it is recalled (1 to 400 characters)")
    problem = first_problem(reason, "reason")
    if problem is not None or len(reason) > MAX_REASON:
        raise InvalidRequest(problem or f"reason: at most {MAX_REASON} characters")
    target = parse_handle(handle)
    await authorize_write(session, principal, target, node_prefix=node_prefix)
    kept = [v for v in await _locked(session, str(target)) if v.index != RECALL_INDEX]
    value = HandleValue(index=RECALL_INDEX, type=RECALL_TYPE, format="string", value=reason.strip())
    record, _ = await put_record(
        session, target, [*kept, value], principal=principal, node_prefix=node_prefix
    )
    written = recall_of(record)
    assert written is not None
    await repo.put(
        session,
        handle=record.handle,
        reason=written.value,
        at=datetime.fromisoformat(written.timestamp),
        actor=principal.actor,
    )
    await outbox.add(
        session,
        kind="identifier.recall",
        data={"handle": record.handle, "reason": written.value},
        at=clock.now(),
    )
    await touched(session, [EVERYTHING])
    return RecallView(record.handle, True, written.value, written.timestamp)


async def undo(
    session: AsyncSession, handle: str, *, principal: Principal, node_prefix: str
) -> RecallView:
    """Lift the recall of ``handle``; lifting one that is not recalled changes nothing."""
    target = parse_handle(handle)
    await authorize_write(session, principal, target, node_prefix=node_prefix)
    existing = await _locked(session, str(target))
    if not any(v.index == RECALL_INDEX for v in existing):
        return RecallView(str(target), False, None, None)
    kept = [v for v in existing if v.index != RECALL_INDEX]
    await put_record(session, target, kept, principal=principal, node_prefix=node_prefix)
    await repo.remove(session, str(target))
    await outbox.add(
        session, kind="identifier.recall_undone", data={"handle": str(target)}, at=clock.now()
    )
    await touched(session, [EVERYTHING])
    return RecallView(str(target), False, None, None)


async def _locked(session: AsyncSession, handle: str) -> tuple[HandleValue, ...]:
    stored = await handles_repo.lock(session, handle)
    if stored is None:
        raise HandleNotFound.of(handle)
    return values_from_stored(stored)


class RecallingStore:
    """The resolver's store, adding the ``RECALL`` warning of a recalled ancestor.

    The recalls are read whole (they are few) and read again after the cache was cleared,
    which every recall and undo does in every process; while there are none, a lookup costs
    exactly what the inner store's does.
    """

    def __init__(self, inner: Store, database: Database, cache: ResolverCache) -> None:
        self._inner = inner
        self._database = database
        self._cache = cache
        self._recalls: dict[str, tuple[str, datetime]] | None = None
        self._loaded_at = -1

    async def fetch(self, handle: str) -> Record | None:
        record = await self._inner.fetch(handle)
        if record is None or recall_of(record) is not None:
            return record
        recalls = await self._current()
        if not recalls:
            return record
        found = await self._recalled_above(record, recalls)
        if found is None:
            return record
        source, shown = found
        reason, at = recalls[source]
        warning = HandleValue(
            index=RECALL_INDEX,
            type=RECALL_TYPE,
            format="string",
            value=reason,
            timestamp=clock.handle_timestamp(clock.as_utc(at)),
            references=(Reference(source, RECALL_INDEX),) if shown else (),
        )
        return Record(record.handle, (*record.values, warning))

    async def _current(self) -> dict[str, tuple[str, datetime]]:
        clears = self._cache.clears
        if self._recalls is None or clears != self._loaded_at:
            async with self._database.read_session() as session:
                self._recalls = await repo.every(session)
            self._loaded_at = clears
        return self._recalls

    async def _recalled_above(
        self, record: Record, recalls: dict[str, tuple[str, datetime]]
    ) -> tuple[str, bool] | None:
        """The nearest recalled identifier up the references from ``record``, and whether the
        way to it is public (a public way preferred among the nearest)."""
        seen = {record.handle}
        level = [(record, True)]
        for _ in range(MAX_DEPTH):
            parents: dict[str, bool] = {}  # handle -> reached by a public way
            for child, public in level:
                for parent, shown in _parents(child):
                    if parent not in seen:
                        parents[parent] = parents.get(parent, False) or (public and shown)
            recalled = sorted((not shown, p) for p, shown in parents.items() if p in recalls)
            if recalled:
                hidden, source = recalled[0]
                return source, not hidden
            seen.update(parents)
            loaded = [(await self._inner.fetch(p), shown) for p, shown in parents.items()]
            level = [(r, shown) for r, shown in loaded if r is not None]
            if not level:
                return None
        return None


def _parents(record: Record) -> list[tuple[str, bool]]:
    """The identifiers ``record`` references, each with whether the reference is public."""
    return [
        (reference.handle, value.public_read)
        for value in record.values
        for reference in value.references
        if reference.handle != record.handle
    ]
