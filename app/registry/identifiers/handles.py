"""Identifiers: create, replace, change, mint and delete records under the rules of the node.

Who may write where:
- an enterprise under its own prefixes (not while disabled);
- the operator under any allocated prefix, the node prefix itself, and ``0.NA/`` records;
- ``<prefix>/ADMIN`` is the enterprise's login identity and only the node writes it.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import replace
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import ADMIN_SUFFIX, Principal
from app.errors import (
    AuthenticationRequired,
    PermissionDenied,
)
from app.registry import clock
from app.registry.identifiers.idempotency import earlier_mint, fingerprint
from app.registry.templates import conformance
from app.storage import enterprises as enterprise_repo
from app.storage import grants as grants_repo
from app.storage import handles as repo
from resolver.engine import within
from resolver.errors import (
    HandleAlreadyExists,
    HandleNotFound,
    InvalidValue,
    NotResponsible,
    ValueAlreadyExists,
    ValuesNotFound,
)
from resolver.identifier import (
    PREFIX_RECORD_PREFIX,
    Handle,
    check_new,
    parse_handle,
    parse_prefix,
)
from resolver.record import Record
from resolver.values import MAX_VALUES, HandleValue, value_json, values_from_stored

DEFAULT_ADMIN_PERMISSIONS = "011111110011"
ADMIN_INDEX = 300


def node_admin_value(node_prefix: str, *, index: int) -> HandleValue:
    return HandleValue(
        index=index,
        type="HS_ADMIN",
        format="admin",
        value={
            "handle": f"{PREFIX_RECORD_PREFIX}/{node_prefix}",
            "index": 200,
            "permissions": "111111111111",
        },
    )


async def authorize_write(
    session: AsyncSession, principal: Principal, handle: Handle, *, node_prefix: str
) -> None:
    """Raise unless ``principal`` may write ``handle`` on this node."""
    if principal.is_anonymous:
        raise AuthenticationRequired(
            "writing needs credentials: Basic 300:<prefix>/ADMIN with the enterprise secret, "
            "or Bearer <token>"
        )
    if principal.is_reader:
        raise PermissionDenied(
            "a reader token may only read; writing needs the owner's credentials"
        )
    if not principal.active:
        raise PermissionDenied("this enterprise is disabled; its writes are refused")
    target = handle.suffix if handle.prefix == PREFIX_RECORD_PREFIX else handle.prefix
    if not within(target, node_prefix):
        raise NotResponsible(f"this node holds prefix {node_prefix} only, not {target}")
    if handle.suffix == ADMIN_SUFFIX and handle.prefix != PREFIX_RECORD_PREFIX:
        raise PermissionDenied(
            f"{handle} is the enterprise's admin identity; only the node writes it"
        )
    if principal.is_operator:
        if handle.prefix in {PREFIX_RECORD_PREFIX, node_prefix}:
            return
        if await enterprise_repo.owner_of(session, handle.prefix) is None:
            raise NotResponsible(
                f"prefix {handle.prefix} is not allocated on this node; "
                "allocate it with POST /api/v1/enterprises first"
            )
        return
    if handle.prefix == PREFIX_RECORD_PREFIX or not principal.owns(handle.prefix):
        raise PermissionDenied(f"this enterprise may write only under {_listing(principal)}")


def _listing(principal: Principal) -> str:
    return ", ".join(sorted(principal.prefixes)) or "no prefix"


async def put_record(
    session: AsyncSession,
    handle: Handle,
    values: Sequence[HandleValue],
    *,
    principal: Principal,
    node_prefix: str,
    indexes: Collection[int] | None = None,
    overwrite: bool = True,
    history: bool = True,
    existing_only: bool = False,
    conform: bool = False,
) -> tuple[Record, bool]:
    """Create or replace a record, or with ``indexes`` add/replace only those values.

    ``existing_only`` (with ``indexes``): replace values only, refusing indexes the record
    does not hold (the Handle protocol's modify).

    Returns the stored record and whether it was created. Repeating the same request leaves
    the same record: values whose content did not change keep their timestamps.
    ``history=False``: no history entry (device liveness, rewritten every few seconds).
    ``conform``: the values are raw Handle values from a client (the Handle REST API, the
    Handle protocol): a record registered against a template must keep to it
    (:func:`app.registry.templates.conformance.conform`).
    """
    await authorize_write(session, principal, handle, node_prefix=node_prefix)
    name = str(handle)
    now = clock.now()
    actor = principal.actor
    while True:
        stored = await repo.lock(session, name)
        existing = values_from_stored(stored) if stored is not None else None
        if indexes is not None:
            if existing is None:
                raise HandleNotFound(f"handle {name} not found; PUT without index= to create it")
            merged = _merge(
                existing, values, indexes, overwrite=overwrite, existing_only=existing_only
            )
        elif existing is not None and not overwrite:
            raise HandleAlreadyExists(f"handle {name} already exists (overwrite=false)")
        else:
            merged = _with_admin(list(values), handle)
        if conform:
            merged = await conformance.conform(
                session, name, merged, existing=existing or (), principal=principal
            )
        final = _stamped(merged, existing or (), now)
        if existing is not None:
            await repo.replace(
                session,
                handle=name,
                values=final,
                now=now,
                actor=actor,
                before=stored,
                history=history,
            )
            return Record(name, values_from_stored(final)), False
        check_new(handle)
        if await repo.insert(
            session,
            handle=name,
            prefix=handle.prefix,
            values=final,
            now=now,
            actor=actor,
            history=history,
        ):
            return Record(name, values_from_stored(final)), True
        # Another writer created it between our read and insert: go again as an update.


def new_record_values(
    handle: Handle, values: Sequence[HandleValue], now: datetime
) -> list[dict[str, object]]:
    """The stored values of a record created now: stamped, with the owner's HS_ADMIN added
    (what :func:`put_record` stores for a new record; bulk loads use it per row, so this
    skips the per-value comparisons with earlier values that :func:`_stamped` makes)."""
    complete = _with_admin(list(values), handle)
    if len(complete) > MAX_VALUES:
        raise InvalidValue(f"the record would hold {len(complete)} values; at most {MAX_VALUES}")
    stamp = clock.handle_timestamp(now)
    out = []
    for v in sorted(complete, key=lambda v: v.index):
        stored = value_json(v)
        stored["timestamp"] = stamp
        out.append(stored)
    return out


async def write_system_record(
    session: AsyncSession,
    *,
    handle: str,
    prefix: str,
    values: list[HandleValue],
    now: datetime,
    actor: str = "node",
) -> None:
    """Records the node itself owns (admin identities, prefix records)."""
    final = _stamped(values, (), now)
    if not await repo.insert(
        session, handle=handle, prefix=prefix, values=final, now=now, actor=actor
    ):
        await repo.replace(session, handle=handle, values=final, now=now, actor=actor)


def _merge(
    existing: Sequence[HandleValue],
    values: Sequence[HandleValue],
    indexes: Collection[int],
    *,
    overwrite: bool,
    existing_only: bool = False,
) -> list[HandleValue]:
    sent = {v.index: v for v in values}
    missing = [i for i in indexes if i not in sent]
    if missing:
        raise InvalidValue(
            f"index={missing[0]} was given but the body has no value with that index"
        )
    current = {v.index: v for v in existing}
    absent = sorted(i for i in indexes if i not in current)
    if existing_only and absent:
        raise ValuesNotFound(f"no value with index {absent[0]} to modify")
    if not overwrite:
        clash = sorted(i for i in indexes if i in current)
        if clash:
            raise ValueAlreadyExists(
                f"a value with index {clash[0]} already exists (overwrite=false)"
            )
    for index in indexes:
        current[index] = sent[index]
    return list(current.values())


def _with_admin(values: list[HandleValue], handle: Handle) -> list[HandleValue]:
    """Handle records carry an HS_ADMIN value; add the owner's when the client sent none."""
    if any(v.type == "HS_ADMIN" for v in values):
        return values
    used = {v.index for v in values}
    index = next(i for i in range(100, 100 + MAX_VALUES + 2) if i not in used)
    owner = owner_prefix(handle)
    admin = HandleValue(
        index=index,
        type="HS_ADMIN",
        format="admin",
        value={
            "handle": f"{owner}/{ADMIN_SUFFIX}",
            "index": ADMIN_INDEX,
            "permissions": DEFAULT_ADMIN_PERMISSIONS,
        },
    )
    return [*values, admin]


def _stamped(
    values: Sequence[HandleValue], existing: Sequence[HandleValue], now: datetime
) -> list[dict[str, object]]:
    if len(values) > MAX_VALUES:
        raise InvalidValue(f"the record would hold {len(values)} values; at most {MAX_VALUES}")
    before = {v.index: v for v in existing}
    stamp = clock.handle_timestamp(now)
    out = []
    for v in sorted(values, key=lambda v: v.index):
        old = before.get(v.index)
        timestamp = old.timestamp if old is not None and old.same_content(v) else stamp
        out.append(value_json(replace(v, timestamp=timestamp)))
    return out


async def mint_record(
    session: AsyncSession,
    base: str,
    values: Sequence[HandleValue],
    *,
    principal: Principal,
    node_prefix: str,
    idempotency_key: str | None = None,
) -> tuple[Record, bool]:
    """Create a record under a server-chosen suffix: ``<base><uuid>`` or ``<prefix>/<uuid>``.

    With an idempotency key, a retry returns the identifier the first call minted (and False).
    """
    prefix_text, _, stem = base.partition("/")
    prefix = parse_prefix(prefix_text)
    handle = parse_handle(f"{prefix}/{stem}{uuid.uuid4()}")
    await authorize_write(session, principal, handle, node_prefix=node_prefix)
    if idempotency_key is not None:
        request = {"base": f"{prefix}/{stem}", "values": [value_json(v) for v in values]}
        earlier = await earlier_mint(
            session, principal, key=idempotency_key, handle=handle, asked=fingerprint(request)
        )
        if earlier is not None:
            return earlier, False
    return await put_record(
        session,
        handle,
        values,
        principal=principal,
        node_prefix=node_prefix,
        overwrite=False,
        conform=True,
    )


async def delete_record(
    session: AsyncSession,
    handle: Handle,
    *,
    principal: Principal,
    node_prefix: str,
    indexes: Collection[int] | None = None,
    conform: bool = False,
) -> Record | None:
    """Delete the record, or with ``indexes`` only those values (returning what is left;
    ``conform`` as for :func:`put_record`: what is left must keep to its template)."""
    await authorize_write(session, principal, handle, node_prefix=node_prefix)
    name = str(handle)
    stored = await repo.lock(session, name)
    if stored is None:
        raise HandleNotFound.of(name)
    now = clock.now()
    if not indexes:
        await repo.remove(session, name, now=now, actor=principal.actor, before=stored)
        return None
    existing = values_from_stored(stored)
    present = {v.index for v in existing}
    missing = sorted(set(indexes) - present)
    if missing:
        raise ValuesNotFound(f"handle {name} has no value with index {missing[0]}")
    kept = [v for v in existing if v.index not in indexes]
    if conform:
        kept = await conformance.conform(
            session, name, kept, existing=existing, principal=principal
        )
    final = [value_json(v) for v in kept]
    await repo.replace(
        session, handle=name, values=final, now=now, actor=principal.actor, before=stored
    )
    return Record(name, tuple(kept))


async def can_read_restricted(session: AsyncSession, principal: Principal, handle: Handle) -> bool:
    """The one rule for values whose permissions deny public read, on every read path: the
    owner, the operator, and enterprises or reader tokens the owner granted (unexpired,
    unrevoked) the identifier or its prefix read them. An enterprise the operator disabled
    keeps reading its own identifiers but not what others granted it, until it is enabled
    again (the grants are kept)."""
    owner = owner_prefix(handle)
    if principal.is_operator or principal.owns(owner):
        return True
    if (
        principal.is_anonymous
        or not principal.active
        or (principal.enterprise_id is None and principal.reader_id is None)
    ):
        return False
    return await grants_repo.has_grant(
        session,
        enterprise_id=principal.enterprise_id,
        reader_id=principal.reader_id,
        scopes=(str(handle), owner),
        now=clock.now(),
    )


def owner_prefix(handle: Handle) -> str:
    """The prefix whose enterprise owns ``handle`` (for ``0.NA/<prefix>``, that prefix)."""
    return handle.suffix if handle.prefix == PREFIX_RECORD_PREFIX else handle.prefix
