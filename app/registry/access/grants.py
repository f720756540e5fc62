"""Graded resolution: who besides the owner and the operator reads restricted values.

An enterprise grants another enterprise (named by one of its prefixes) or a reader token the
right to read the restricted values of one identifier or of a whole prefix it owns, until an
optional expiry; revoking takes effect on the next request. The rule itself is applied in
:func:`app.registry.identifiers.handles.can_read_restricted`, which every read path calls.

Reader tokens are read-only bearer tokens an enterprise issues (for a regulator or a
downstream customer); like every credential only their SHA-256 is stored. A reader token reads
public values, plus whatever any enterprise granted it by its id.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import Principal
from app.errors import (
    AuthenticationRequired,
    GrantNotFound,
    InvalidRequest,
    PermissionDenied,
    ReaderTokenNotFound,
)
from app.registry import clock
from app.registry.identifiers.handles import owner_prefix
from app.security import digest, new_token
from app.storage import enterprises as enterprise_repo
from app.storage import grants as repo
from app.storage.models import Grant, ReaderToken
from resolver.errors import InvalidHandle
from resolver.identifier import parse_handle, parse_prefix

READER_ID_PREFIX = "rt_"
GRANT_ID_PREFIX = "gr_"


def _iso(moment: datetime | None) -> str | None:
    return clock.as_utc(moment).isoformat() if moment is not None else None


def require_enterprise(principal: Principal) -> None:
    """Grants and reader tokens are an enterprise's own business."""
    if principal.is_anonymous:
        raise AuthenticationRequired("this needs the enterprise's credentials (Bearer <token>)")
    if principal.kind != "enterprise" or principal.enterprise_id is None:
        raise PermissionDenied("only an enterprise manages grants and reader tokens")


# --- reader tokens ---


@dataclass(frozen=True)
class IssuedReader:
    reader: ReaderToken
    token: str

    def as_json(self) -> dict[str, object]:
        return {**reader_json(self.reader), "token": self.token}


def reader_json(reader: ReaderToken) -> dict[str, object]:
    return {"id": reader.id, "name": reader.name, "createdAt": _iso(reader.created_at)}


async def issue_reader(session: AsyncSession, *, principal: Principal, name: str) -> IssuedReader:
    """A new read-only token (shown once) owned by the calling enterprise."""
    require_enterprise(principal)
    assert principal.enterprise_id is not None
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidRequest("reader token name must be 1 to 200 characters")
    now = clock.now()
    token = new_token()
    credential = await enterprise_repo.add_credential(
        session,
        enterprise_id=principal.enterprise_id,
        kind="reader",
        secret_hash=digest(token),
        now=now,
    )
    reader = await repo.add_reader(
        session,
        reader_id=READER_ID_PREFIX + secrets.token_hex(8),
        enterprise_id=principal.enterprise_id,
        credential_id=credential.id,
        name=name,
        now=now,
    )
    return IssuedReader(reader, token)


async def readers_of(session: AsyncSession, *, principal: Principal) -> list[ReaderToken]:
    require_enterprise(principal)
    assert principal.enterprise_id is not None
    return await repo.readers_of(session, principal.enterprise_id)


async def revoke_reader(session: AsyncSession, *, principal: Principal, reader_id: str) -> None:
    """The token stops working at once."""
    require_enterprise(principal)
    reader = await repo.reader(session, reader_id)
    if (
        reader is None
        or reader.revoked_at is not None
        or reader.enterprise_id != (principal.enterprise_id)
    ):
        raise ReaderTokenNotFound(f"this enterprise has no reader token {reader_id!r}")
    await repo.revoke_reader(session, reader, now=clock.now())


# --- grants ---


def grant_json(grant: Grant) -> dict[str, object]:
    return {
        "id": grant.id,
        "grantee": grant.grantee,
        "granteeKind": "enterprise" if grant.grantee_enterprise_id is not None else "reader",
        "scope": grant.scope,
        "createdAt": _iso(grant.created_at),
        "expiresAt": _iso(grant.expires_at),
    }


def _scope(principal: Principal, scope: str) -> str:
    """The normalised scope, which must be a prefix of the caller or an identifier under one."""
    try:
        if "/" in scope:
            handle = parse_handle(scope)
            name, owner = str(handle), owner_prefix(handle)
        else:
            name = owner = parse_prefix(scope)
    except InvalidHandle as exc:
        raise InvalidRequest(
            f"scope {scope!r} is not an identifier or prefix: {exc.message}"
        ) from exc
    if not principal.owns(owner):
        raise PermissionDenied(
            f"scope {name} is not under a prefix of this enterprise "
            f"({', '.join(sorted(principal.prefixes))})"
        )
    return name


async def create_grant(
    session: AsyncSession,
    *,
    principal: Principal,
    grantee: str,
    scope: str,
    expires_at: datetime | None,
) -> Grant:
    """Let ``grantee`` (an enterprise prefix, or a reader token id) read restricted values of
    ``scope`` (an identifier or a prefix of the caller) until ``expires_at``."""
    require_enterprise(principal)
    assert principal.enterprise_id is not None
    now = clock.now()
    if expires_at is not None and expires_at <= now:
        raise InvalidRequest("expiresAt must be in the future")
    grant = Grant(
        id=GRANT_ID_PREFIX + secrets.token_hex(8),
        owner_id=principal.enterprise_id,
        scope=_scope(principal, scope.strip()),
        created_at=now,
        expires_at=expires_at,
    )
    grantee = grantee.strip()
    if grantee.startswith(READER_ID_PREFIX):
        reader = await repo.reader(session, grantee)
        if reader is None or reader.revoked_at is not None:
            raise InvalidRequest(f"grantee {grantee!r} is not an active reader token")
        grant.grantee_reader_id = grant.grantee = reader.id
    else:
        try:
            prefix = parse_prefix(grantee)
        except InvalidHandle as exc:
            raise InvalidRequest(
                f"grantee {grantee!r} is neither an enterprise prefix nor a reader token id "
                f"({READER_ID_PREFIX}...)"
            ) from exc
        enterprise = await enterprise_repo.owner_of(session, prefix)
        if enterprise is None:
            raise InvalidRequest(f"grantee {prefix} is not an enterprise prefix on this node")
        if enterprise.id == principal.enterprise_id:
            raise InvalidRequest("an enterprise reads its own values already; grant another")
        grant.grantee_enterprise_id, grant.grantee = enterprise.id, prefix
    return await repo.add_grant(session, grant)


async def grants_of(session: AsyncSession, *, principal: Principal) -> list[Grant]:
    """The caller's unrevoked grants (expired ones included, marked by ``expiresAt``); the
    operator sees every enterprise's."""
    if principal.is_operator:
        return await repo.grants_by(session, None)
    require_enterprise(principal)
    return await repo.grants_by(session, principal.enterprise_id)


async def revoke_grant(session: AsyncSession, *, principal: Principal, grant_id: str) -> Grant:
    """Takes effect on the next request (grants are never cached)."""
    if not principal.is_operator:
        require_enterprise(principal)
    grant = await repo.grant(session, grant_id)
    if (
        grant is None
        or grant.revoked_at is not None
        or not (principal.is_operator or grant.owner_id == principal.enterprise_id)
    ):
        raise GrantNotFound(f"no grant {grant_id!r} of this enterprise")
    grant.revoked_at = clock.now()
    await session.flush()
    return grant
