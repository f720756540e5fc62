"""Bulk registration: many identifiers in one call, each validated exactly as one
``POST /api/v1/identifiers`` is (same shape, same :func:`check`, same authorization), written
set-based through ``app/storage/handles.py: insert_many``.

Every item gets a result in the order sent: ``{"line", "handle", "created", "attributes"}``
(the attributes typed by :func:`json_attributes`, from the values just checked: no query) or
``{"line", "error", "detail", "fields"}``; one bad item never stops the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import Principal
from app.errors import (
    IdempotencyKeyReused,
    InvalidRequest,
    NodeError,
    ServiceUnavailable,
    TemplateViolation,
)
from app.registry import clock
from app.registry.identifiers.bulk_items import MAX_KEY, item_key, item_request
from app.registry.identifiers.handles import authorize_write, new_record_values
from app.registry.identifiers.idempotency import check_retry, owner_key
from app.registry.identifiers.templated import (
    registration_fingerprint,
    target_handle,
    url_problems,
    url_values,
)
from app.registry.templates import catalog
from app.registry.templates.attributes import (
    Claim,
    Problem,
    check,
    json_attributes,
    template_reference,
)
from app.registry.templates.conformance import taken_problem
from app.registry.templates.definitions import Template
from app.storage import handles as repo
from app.storage import idempotency as keys_repo
from app.storage.attributes import ClaimKey
from app.storage.new_records import NewRecord
from resolver.errors import HandleAlreadyExists, IdnodeError
from resolver.identifier import PREFIX_RECORD_PREFIX, Handle, check_new
from resolver.values import values_from_stored

Result = dict[str, Any]
YIELD_EVERY = 250  # items checked between pauses for other tasks (about 10 ms)


@dataclass(frozen=True, slots=True)
class Item:
    """One registration request of a batch: its line (or position) and its parsed body, or
    why it could not be read."""

    line: int
    body: Any = None
    unreadable: str | None = None


@dataclass
class Batch:
    """Who sends a batch, and what its chunks look up once: templates and prefixes."""

    principal: Principal
    node_prefix: str
    templates: dict[str, Template | NodeError] = field(default_factory=dict)
    prefixes: dict[str, Exception | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Row:
    position: int
    line: int
    handle: str
    record: NewRecord
    claims: tuple[Claim, ...]
    key: str | None
    asked: str | None  # the request's fingerprint, with a key
    attributes: dict[str, Any]  # as the JSON types the template declares


def error_result(line: int, exc: IdnodeError) -> Result:
    fields = exc.fields if isinstance(exc, TemplateViolation) else []
    return {"line": line, "error": exc.name, "detail": exc.message, "fields": fields}


def created_result(
    line: int, handle: str, attributes: dict[str, Any] | None, *, created: bool = True
) -> Result:
    """An item registered now or by an earlier call, with its attributes when known."""
    result: Result = {"line": line, "handle": handle, "created": created}
    if attributes is not None:
        result["attributes"] = attributes
    return result


async def register_chunk(
    session: AsyncSession, batch: Batch, items: Sequence[Item]
) -> list[Result]:
    """Register ``items`` in the session's transaction; one result per item, in order."""
    return await write_chunk(session, batch, await prepare_chunk(session, batch, items))


@dataclass
class Prepared:
    """A chunk checked and turned into rows, not yet written: the results known already
    (rejections, earlier mints) and the rows to write."""

    results: list[Result | None]
    rows: list[_Row]
    seen: _Seen
    now: datetime


async def prepare_chunk(session: AsyncSession, batch: Batch, items: Sequence[Item]) -> Prepared:
    """Check every item of a chunk (reading, never writing, in the session's transaction).

    Pauses every ``YIELD_EVERY`` items so that another chunk's writes, waiting on the
    database meanwhile, keep going."""
    results: list[Result | None] = [None] * len(items)
    earlier = await _earlier_mints(session, batch, items)
    now = clock.now()
    rows: list[_Row] = []
    seen = _Seen()
    for position, item in enumerate(items):
        if position % YIELD_EVERY == YIELD_EVERY - 1:
            await asyncio.sleep(0)
        try:
            prepared = await _prepare(session, batch, item, position, earlier, now)
            if isinstance(prepared, Earlier):
                results[position] = created_result(
                    item.line, prepared.handle, prepared.attributes, created=False
                )
                continue
            seen.admit(prepared)
        except ServiceUnavailable:
            raise  # not this item's fault: the batch stops, and a retry carries on
        except IdnodeError as exc:
            results[position] = error_result(item.line, exc)
            continue
        rows.append(prepared)
    return Prepared(results, rows, seen, now)


async def write_chunk(session: AsyncSession, batch: Batch, chunk: Prepared) -> list[Result]:
    """Write a prepared chunk in the session's transaction; one result per item, in order."""
    results, rows, seen = chunk.results, chunk.rows, chunk.seen
    first = [r for r in rows if r.position not in seen.repeats]
    inserted = await repo.insert_many(
        session, [r.record for r in first], now=chunk.now, actor=batch.principal.actor
    )
    for row in first:
        results[row.position] = _outcome(row, inserted, batch.principal)
    for row in rows:
        if row.position in seen.repeats:
            results[row.position] = seen.repeat_result(row, results)
    await _remember_keys(session, batch, rows, results)
    return [r for r in results if r is not None]


class _Seen:
    """Handles, unique values and idempotency keys met earlier in the same chunk."""

    def __init__(self) -> None:
        self.handles: dict[str, int] = {}
        self.claims: dict[ClaimKey, int] = {}
        self.keys: dict[str, _Row] = {}
        self.repeats: dict[int, _Row] = {}  # position -> the row first sending its key

    def admit(self, row: _Row) -> None:
        if row.key is not None and (first := self.keys.get(row.key)) is not None:
            if first.asked != row.asked:
                raise IdempotencyKeyReused(
                    f"idempotency key {row.key!r} is also at line {first.line} of this batch, "
                    "with a different request; send a new key with a new request"
                )
            self.repeats[row.position] = first
            return
        if row.handle in self.handles:
            raise HandleAlreadyExists(
                f"handle {row.handle} is also at line {self.handles[row.handle]} of this batch"
            )
        problems = [
            {
                "name": c.item_name,
                "message": f"{c.value!r} is also at line {self.claims[k]} of this batch; "
                f"it must be unique in template {c.template_id}",
            }
            for c in row.claims
            if (k := (c.template_id, c.item_name, c.value)) in self.claims
        ]
        if problems:
            raise TemplateViolation(problems)
        self.handles[row.handle] = row.line
        for c in row.claims:
            self.claims[(c.template_id, c.item_name, c.value)] = row.line
        if row.key is not None:
            self.keys[row.key] = row

    def repeat_result(self, row: _Row, results: Sequence[Result | None]) -> Result:
        first = self.repeats[row.position]
        answered = results[first.position]
        if answered is not None and "handle" in answered:
            return created_result(
                row.line, answered["handle"], answered.get("attributes"), created=False
            )
        return error_result(
            row.line,
            InvalidRequest(
                f"idempotency key {row.key!r} is also at line {first.line} of this batch, "
                "which was rejected"
            ),
        )


def _outcome(row: _Row, inserted: repo.Inserted, principal: Principal) -> Result:
    if row.handle in inserted.created:
        return created_result(row.line, row.handle, row.attributes)
    clashes = inserted.clashes.get(row.handle)
    if clashes:
        by_key = {(c.template_id, c.item_name, c.value): c for c in row.claims}
        problems = [taken_problem(by_key[key], holder, principal) for key, holder in clashes]
        return error_result(row.line, TemplateViolation(problems))
    return error_result(row.line, HandleAlreadyExists(f"handle {row.handle} already exists"))


async def _prepare(
    session: AsyncSession,
    batch: Batch,
    item: Item,
    position: int,
    earlier: Mapping[str, Earlier],
    now: datetime,
) -> _Row | Earlier:
    """The row to write, or what an earlier call with its idempotency key created."""
    if item.unreadable is not None:
        raise InvalidRequest(item.unreadable)
    body = item_request(item.body)
    target = check_new(target_handle(body.get("handle"), body.get("prefix")))
    await authorize(session, batch, target)
    key = item_key(body.get("idempotencyKey"))
    asked = None
    if key is not None:
        asked = registration_fingerprint(
            handle=body.get("handle"),
            prefix=body.get("prefix"),
            template=body["template"],
            attributes=body.get("attributes"),
            visibility=body.get("visibility"),
            url=body.get("url"),
        )
        if key in earlier:
            found = earlier[key]
            check_retry(key, found.handle, stored=found.fingerprint, asked=asked)
            return found
    template = await _template(session, batch, body["template"])
    checked = check(template, body.get("attributes") or {}, visibility=body.get("visibility"))
    problems: list[Problem] = [*checked.problems, *url_problems(body.get("url"))]
    if problems:
        raise TemplateViolation(problems)
    handle = str(target)
    values = [*checked.values, *url_values(body.get("url"))]
    record = NewRecord(
        handle=handle,
        prefix=target.prefix,
        values=new_record_values(target, values, now),
        claims=tuple(((c.template_id, c.item_name, c.value), c.index) for c in checked.claims),
    )
    attributes = json_attributes(template, checked.values)
    return _Row(position, item.line, handle, record, checked.claims, key, asked, attributes)


async def authorize(session: AsyncSession, batch: Batch, target: Handle) -> None:
    """``authorize_write`` once per prefix; what it decides depends only on the prefix,
    except for the two suffix rules checked per row here."""
    if target.prefix == PREFIX_RECORD_PREFIX or target.suffix == "ADMIN":
        await authorize_write(session, batch.principal, target, node_prefix=batch.node_prefix)
        return
    if target.prefix not in batch.prefixes:
        try:
            await authorize_write(session, batch.principal, target, node_prefix=batch.node_prefix)
            batch.prefixes[target.prefix] = None
        except IdnodeError as exc:
            batch.prefixes[target.prefix] = exc
    refused = batch.prefixes[target.prefix]
    if refused is not None:
        raise refused


async def _template(session: AsyncSession, batch: Batch, reference: str) -> Template:
    if reference not in batch.templates:
        try:
            batch.templates[reference] = await catalog.find(session, batch.principal, reference)
        except NodeError as exc:
            batch.templates[reference] = exc
    found = batch.templates[reference]
    if isinstance(found, NodeError):
        raise found
    return found


@dataclass(frozen=True, slots=True)
class Earlier:
    """An identifier an earlier call created with the same idempotency key."""

    handle: str
    fingerprint: str | None  # of the request that created it (None: kept before fingerprints)
    attributes: dict[str, Any] | None


async def _earlier_mints(
    session: AsyncSession, batch: Batch, items: Sequence[Item]
) -> dict[str, Earlier]:
    """Idempotency keys of this chunk already used by earlier calls: key -> what they
    created, with the fingerprint of the request that did (a key whose identifier was deleted
    since counts as unused)."""
    keys = [
        k
        for item in items
        if isinstance(item.body, dict)
        and isinstance(k := item.body.get("idempotencyKey"), str)
        and 0 < len(k) <= MAX_KEY
    ]
    if not keys:
        return {}
    owner = owner_key(batch.principal)
    await keys_repo.lock_mints(session, owner=owner)  # until the chunk has recorded its keys
    minted = await keys_repo.minted_many(session, owner=owner, keys=keys)
    alive = await repo.stored_many(session, [h for h, _ in minted.values()])
    return {
        k: Earlier(h, asked, await _attributes_held(session, batch, h, alive[h]))
        for k, (h, asked) in minted.items()
        if h in alive
    }


async def _attributes_held(
    session: AsyncSession, batch: Batch, handle: str, stored: list[dict[str, Any]]
) -> dict[str, Any] | None:
    values = values_from_stored(stored)
    reference = template_reference(values)
    if reference is None:
        return None
    try:
        template = await _template(session, batch, reference)
    except NodeError:
        return None
    return json_attributes(template, values)


async def _remember_keys(
    session: AsyncSession, batch: Batch, rows: Sequence[_Row], results: Sequence[Result | None]
) -> None:
    fresh = {
        row.key: (row.handle, row.asked)
        for row in rows
        if row.key is not None and (done := results[row.position]) and done.get("created")
    }
    if fresh:
        await keys_repo.remember_mints(
            session, owner=owner_key(batch.principal), minted=fresh, now=clock.now()
        )


__all__ = [
    "Batch",
    "Item",
    "Prepared",
    "Result",
    "authorize",
    "prepare_chunk",
    "register_chunk",
    "write_chunk",
]
