"""Idempotency keys: a retried mint or registration answers what the first call created.

The key is claimed, with a fingerprint of what was asked, in the transaction that creates the
identifier; a retry with the same key and the same request gets that identifier back, a
different request under the same key is refused.
"""

from __future__ import annotations

import hashlib

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import Principal
from app.errors import IdempotencyKeyReused, InvalidRequest
from app.registry import clock
from app.storage import handles as repo
from app.storage import idempotency as keys_repo
from resolver.errors import HandleNotFound
from resolver.identifier import Handle
from resolver.record import Record
from resolver.values import values_from_stored


async def earlier_mint(
    session: AsyncSession, principal: Principal, *, key: str, handle: Handle, asked: str
) -> Record | None:
    """The record an earlier mint with this idempotency key created; None when this is the
    first use of the key, which is then claimed for ``handle`` in this transaction.

    ``asked`` is the :func:`fingerprint` of what the mint was asked: a retry must ask the
    same, or it is refused with :class:`IdempotencyKeyReused` rather than answered with
    another's result.
    """
    owner = owner_key(principal)
    if not 0 < len(key) <= 200:
        raise InvalidRequest("the idempotency key must be 1 to 200 characters")
    await keys_repo.lock_mints(session, owner=owner)
    earlier = await keys_repo.minted_for(session, owner=owner, key=key)
    if earlier is None and not await keys_repo.remember_mint(
        session, owner=owner, key=key, handle=str(handle), fingerprint=asked, now=clock.now()
    ):
        earlier = await keys_repo.minted_for(session, owner=owner, key=key)
    if earlier is None:
        return None
    check_retry(key, earlier.handle, stored=earlier.fingerprint, asked=asked)
    stored = await repo.lock(session, earlier.handle)
    if stored is None:
        raise HandleNotFound(f"idempotency key {key!r} minted {earlier.handle}, since deleted")
    return Record(earlier.handle, values_from_stored(stored))


def fingerprint(request: object) -> str:
    """What a mint with an idempotency key was asked (JSON-like), as stored with the key:
    the SHA-256 of its canonical JSON."""
    return hashlib.sha256(orjson.dumps(request, option=orjson.OPT_SORT_KEYS)).hexdigest()


def check_retry(key: str, handle: str, *, stored: str | None, asked: str) -> None:
    """Refuse a request reusing ``key``, which minted ``handle``, for something else than
    the request that first sent it. Keys stored without a fingerprint (before there was one)
    are taken as retries."""
    if stored is not None and stored != asked:
        raise IdempotencyKeyReused(
            f"idempotency key {key!r} was used by a different request (which created "
            f"{handle}); send a new key with a new request"
        )


def owner_key(principal: Principal) -> str:
    """Whose idempotency keys these are: the operator's, or one enterprise's."""
    return "operator" if principal.is_operator else f"enterprise:{principal.enterprise_id}"
