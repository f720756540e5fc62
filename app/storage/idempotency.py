"""SQL for idempotency keys: which identifier a mint with a key created, and the lock that
keeps two mints with the same new key from both creating one."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.storage.attributes import LOOKUP_SLICE
from app.storage.copy import is_postgres
from app.storage.models import IdempotencyKey


async def lock_mints(session: AsyncSession, *, owner: str) -> None:
    """Hold, until this transaction ends, the right to mint with ``owner``'s idempotency keys.

    A mint looks its key up, writes the identifier, then records the key; two transactions
    doing that at once with the same new key would both find nothing and both mint. So
    every mint with keys takes this lock first, and sees what the previous one committed.
    PostgreSQL: a transaction-scoped advisory lock per owner. SQLite needs none: it lets one
    writer in at a time (BEGIN IMMEDIATE)."""
    if is_postgres(session):
        await session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:name, 0))"),
            {"name": f"idnode.mint:{owner}"},
        )


async def minted_for(session: AsyncSession, *, owner: str, key: str) -> IdempotencyKey | None:
    """What an earlier mint with this key created (its handle and request fingerprint)."""
    return (
        await session.execute(
            select(IdempotencyKey).where(IdempotencyKey.owner == owner, IdempotencyKey.key == key)
        )
    ).scalar_one_or_none()


Minted = tuple[str, str | None]  # an idempotency key's identifier and request fingerprint


async def minted_many(
    session: AsyncSession, *, owner: str, keys: Sequence[str]
) -> dict[str, Minted]:
    """What earlier mints with these keys created (key -> handle and request fingerprint)."""
    found: dict[str, Minted] = {}
    unique = list(dict.fromkeys(keys))
    for start in range(0, len(unique), LOOKUP_SLICE):
        rows = await session.execute(
            select(IdempotencyKey.key, IdempotencyKey.handle, IdempotencyKey.fingerprint).where(
                IdempotencyKey.owner == owner,
                IdempotencyKey.key.in_(unique[start : start + LOOKUP_SLICE]),
            )
        )
        found.update({key: (handle, asked) for key, handle, asked in rows.all()})
    return found


async def remember_mints(
    session: AsyncSession, *, owner: str, minted: dict[str, Minted], now: datetime
) -> None:
    """Remember the keys of a bulk load's new identifiers with their requests' fingerprints
    (a key claimed meanwhile by a concurrent call keeps its first identifier)."""
    statement = (
        postgresql_insert(IdempotencyKey) if is_postgres(session) else sqlite_insert(IdempotencyKey)
    ).on_conflict_do_nothing()
    await session.execute(
        statement,
        [
            {"owner": owner, "key": k, "handle": h, "fingerprint": f, "created_at": now}
            for k, (h, f) in minted.items()
        ],
    )


async def remember_mint(
    session: AsyncSession, *, owner: str, key: str, handle: str, fingerprint: str, now: datetime
) -> bool:
    """Claim the key for this mint; False when another mint claimed it first."""
    try:
        async with session.begin_nested():
            session.add(
                IdempotencyKey(
                    owner=owner, key=key, handle=handle, fingerprint=fingerprint, created_at=now
                )
            )
    except IntegrityError:
        return False
    return True


# --- bulk registration: one set-based path (app/registry/identifiers/bulk.py) ---
