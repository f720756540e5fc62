"""SNMS identifier operations, each done by the service the node's own API uses: one create
is ``registry.identifiers.register`` (create-only and atomic), a batch create is the bulk
registration of ``POST /api/v1/identifiers:batch``, update is ``registry.identifiers.change``
and delete ``registry.handles.delete_record``."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import Principal
from app.errors import InvalidRequest, TemplateViolation
from app.registry.identifiers import (
    Batch,
    Item,
    Result,
    authorize,
    authorize_write,
    can_read_restricted,
    collector_paused,
    delete_record,
    register_chunk,
)
from app.registry.identifiers import templated as service
from app.registry.templates import Template
from app.snms import records, templates
from app.snms.envelope import SUCCESS, outcome
from app.storage import snms as repo
from resolver.errors import IdnodeError
from resolver.identifier import parse_handle
from resolver.record import Record

MAX_BATCH = 2000
SnmsItem = dict[str, Any]


async def create(
    session: AsyncSession, principal: Principal, body: Any, *, node_prefix: str
) -> bool:
    """Register one identifier; a second create of it fails with "标识已存在" and changes
    nothing."""
    record = records.parse_record(body)
    target = parse_handle(record.handle)
    await authorize_write(session, principal, target, node_prefix=node_prefix)
    template = await templates.resolve(session, principal, target.prefix, record.template_version)
    registered = await service.register(
        session,
        principal=principal,
        node_prefix=node_prefix,
        template=template.reference,
        attributes=records.attributes(template, record.values),
        handle=str(target),
    )
    return registered.created


async def update(
    session: AsyncSession, principal: Principal, body: Any, *, node_prefix: str
) -> None:
    """Replace the identifier's template values with those sent (a value not sent is
    removed), validated against the latest version of its template."""
    record = records.parse_record(body)
    target = parse_handle(record.handle)
    await authorize_write(session, principal, target, node_prefix=node_prefix)
    template = await templates.resolve(session, principal, target.prefix, record.template_version)
    sent = records.attributes(template, record.values)
    await service.change(
        session,
        str(target),
        principal=principal,
        node_prefix=node_prefix,
        attributes={**dict.fromkeys((i.name for i in template.items), None), **sent},
        later=template,
    )


async def delete(
    session: AsyncSession, principal: Principal, handle: Any, *, node_prefix: str
) -> None:
    if not isinstance(handle, str) or not handle:
        raise InvalidRequest("缺少必要的请求参数: handle")
    await delete_record(session, parse_handle(handle), principal=principal, node_prefix=node_prefix)


async def detail(session: AsyncSession, principal: Principal, record: Record) -> dict[str, Any]:
    """What the caller may read of the record (restricted values only for the owner and
    those it granted), in the SNMS shape."""
    privileged = await can_read_restricted(session, principal, parse_handle(record.handle))
    view = record.readable_by_admin() if privileged else record.public()
    template = await service.template_of(session, record)
    version = ""
    if template is not None:
        names = await repo.template_names_of(session, [template.id])
        version = names.get(template.id, template.reference)
    return records.detail(view, template, version)


# --- batches: at most 2,000 records, one answer per record in the order sent ---


def batch_of(body: Any) -> list[Any]:
    items = body.get("handles") if isinstance(body, dict) else body
    if not isinstance(items, list):
        raise InvalidRequest("the body must be a JSON array")
    if len(items) > MAX_BATCH:
        raise InvalidRequest(f"单次最多{MAX_BATCH}条: {len(items)} items sent, at most {MAX_BATCH}")
    return items


async def batch_create(
    session: AsyncSession, principal: Principal, body: Any, *, node_prefix: str
) -> tuple[list[SnmsItem], int]:
    """Register each record as the node's batch registration does; (answers, created)."""
    sent = batch_of(body)
    batch = Batch(principal, node_prefix)
    found: dict[tuple[str, str | None], Template | IdnodeError] = {}
    with collector_paused():  # as the node's own batches do: see its docstring
        prepared = [await _item(session, batch, found, n, raw) for n, raw in enumerate(sent)]
        items = [item for item in prepared if isinstance(item, Item)]
        results = iter(await register_chunk(session, batch, items))
    answers = [
        _answer(raw, item) if isinstance(item, IdnodeError) else _created(raw, next(results))
        for raw, item in zip(sent, prepared, strict=True)
    ]
    return answers, sum(1 for a in answers if a["code"] == SUCCESS)


async def _item(
    session: AsyncSession,
    batch: Batch,
    found: dict[tuple[str, str | None], Template | IdnodeError],
    position: int,
    raw: Any,
) -> Item | IdnodeError:
    """The node batch item for one SNMS record, or why it cannot be one. Each template is
    looked up once, after the caller's right to write under its prefix (so a foreign prefix
    answers -3, not "no such template")."""
    try:
        record = records.parse_record(raw)
        target = parse_handle(record.handle)
        key = (target.prefix, record.template_version)
        if key not in found:
            try:
                await authorize(session, batch, target)
                found[key] = await templates.resolve(session, batch.principal, *key)
            except IdnodeError as exc:
                found[key] = exc
        template = found[key]
        if isinstance(template, IdnodeError):
            return template
        body = {
            "handle": str(target),
            "template": template.reference,
            "attributes": records.attributes(template, record.values),
        }
        return Item(position + 1, body)
    except IdnodeError as exc:
        return exc


def _created(raw: Any, result: Result) -> SnmsItem:
    if "error" not in result:
        return {"handle": _handle_of(raw), "code": SUCCESS, "msg": "success"}
    return _answer(raw, _error(result))


def _answer(raw: Any, exc: IdnodeError) -> SnmsItem:
    status, message = outcome(exc)
    return {"handle": _handle_of(raw), "code": status, "msg": message}


def _handle_of(raw: Any) -> Any:
    return raw.get("handle") if isinstance(raw, dict) else raw


async def each(
    session: AsyncSession, sent: list[Any], operation: Callable[[Any], Awaitable[object]]
) -> list[SnmsItem]:
    """Apply ``operation`` to each element (a record, or a handle) in a savepoint of its own,
    so one failure leaves the others done; one answer per element."""
    answers = []
    for raw in sent:
        try:
            async with session.begin_nested():
                await operation(raw)
        except IdnodeError as exc:
            answers.append(_answer(raw, exc))
        else:
            answers.append({"handle": _handle_of(raw), "code": SUCCESS, "msg": "success"})
    return answers


def _error(result: Result) -> IdnodeError:
    """The error a batch result reports, rebuilt from its stable name so that
    :func:`outcome` answers it as it answers the same error anywhere else."""
    cls = _errors_by_name().get(result["error"], InvalidRequest)
    if issubclass(cls, TemplateViolation):
        return TemplateViolation(result.get("fields") or [], result["detail"])
    return cls(result["detail"])


@functools.cache
def _errors_by_name() -> dict[str, type[IdnodeError]]:
    found: dict[str, type[IdnodeError]] = {}
    for cls in _subclasses(IdnodeError):
        found.setdefault(cls.name, cls)  # the most general class of a shared name wins
    return found


def _subclasses(base: type[IdnodeError]) -> Iterator[type[IdnodeError]]:
    todo = [base]
    while todo:
        cls = todo.pop(0)
        yield cls
        todo.extend(cls.__subclasses__())


__all__ = ["MAX_BATCH", "batch_create", "create", "delete", "detail", "each", "update"]
