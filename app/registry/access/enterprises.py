"""Enterprises: allocating prefixes under the node prefix and issuing their credentials."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import ADMIN_SUFFIX
from app.errors import EnterpriseNotFound, InvalidRequest, PrefixTaken
from app.registry import clock
from app.registry.identifiers.handles import node_admin_value, write_system_record
from app.security import digest, new_secret, new_token
from app.storage import enterprises as repo
from app.storage.models import Enterprise
from resolver.identifier import PREFIX_RECORD_PREFIX
from resolver.values import HandleValue

_SEGMENT = re.compile(r"[A-Za-z0-9_-]{1,16}")
_ALLOCATION_ATTEMPTS = 5


@dataclass(frozen=True)
class EnterpriseView:
    """What the operator sees of an enterprise (no secrets)."""

    name: str
    prefix: str
    prefixes: list[str]
    status: str
    created_at: datetime

    @property
    def admin_handle(self) -> str:
        return f"{self.prefix}/{ADMIN_SUFFIX}"

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "prefix": self.prefix,
            "prefixes": self.prefixes,
            "adminHandle": self.admin_handle,
            "status": self.status,
            "createdAt": clock.api_time(self.created_at),
        }


@dataclass(frozen=True)
class IssuedCredentials:
    """Credentials shown once, at creation or rotation; only their hashes are stored."""

    enterprise: EnterpriseView
    secret: str
    token: str

    def as_json(self) -> dict[str, object]:
        return {**self.enterprise.as_json(), "secret": self.secret, "token": self.token}


async def create_enterprise(
    session: AsyncSession, *, name: str, segment: str | None, node_prefix: str
) -> IssuedCredentials:
    """Register an enterprise under the next free (or the requested) prefix segment."""
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidRequest("enterprise name must be 1 to 200 characters")
    now = clock.now()
    enterprise = await repo.add_enterprise(session, name=name, now=now)
    prefix = await _allocate(session, enterprise.id, segment, node_prefix, now)
    await _write_identity_records(session, prefix, node_prefix, now)
    secret, token = await _issue(session, enterprise.id, now)
    return IssuedCredentials(_view(enterprise, [prefix]), secret, token)


async def _allocate(
    session: AsyncSession, enterprise_id: int, segment: str | None, node_prefix: str, now: datetime
) -> str:
    if segment is not None:
        prefix = f"{node_prefix}.{_segment(segment, node_prefix)}"
        if not await repo.claim_prefix(
            session, prefix=prefix, enterprise_id=enterprise_id, now=now
        ):
            raise PrefixTaken(f"prefix {prefix} is already allocated")
        return prefix
    for _ in range(_ALLOCATION_ATTEMPTS):  # a concurrent allocation may take the same number
        taken = await repo.prefixes_under(session, node_prefix)
        numbers = [int(p.split(".")[-1]) for p in taken if p.split(".")[-1].isdigit()]
        prefix = f"{node_prefix}.{max(numbers, default=0) + 1}"
        if await repo.claim_prefix(session, prefix=prefix, enterprise_id=enterprise_id, now=now):
            return prefix
    raise PrefixTaken("could not allocate a free prefix; try again")


def _segment(segment: str, node_prefix: str) -> str:
    segment = segment.strip()
    if segment.upper().startswith(node_prefix + "."):
        segment = segment[len(node_prefix) + 1 :]
    if not _SEGMENT.fullmatch(segment):
        raise InvalidRequest(
            f"prefix segment {segment!r} must be 1 to 16 letters, digits, '-' or '_' "
            f"(the node allocates {node_prefix}.<segment>)"
        )
    return segment.upper()


async def _write_identity_records(
    session: AsyncSession, prefix: str, node_prefix: str, now: datetime
) -> None:
    """``<prefix>/ADMIN`` (the identity Handle clients log in as) and ``0.NA/<prefix>``."""
    admin = f"{prefix}/{ADMIN_SUFFIX}"
    await write_system_record(
        session,
        handle=admin,
        prefix=prefix,
        values=[
            HandleValue(
                index=100,
                type="HS_ADMIN",
                format="admin",
                value={"handle": admin, "index": 300, "permissions": "111111111111"},
            )
        ],
        now=now,
    )
    await write_system_record(
        session,
        handle=f"{PREFIX_RECORD_PREFIX}/{prefix}",
        prefix=PREFIX_RECORD_PREFIX,
        values=[
            node_admin_value(node_prefix, index=100),
            HandleValue(
                index=101,
                type="HS_ADMIN",
                format="admin",
                value={"handle": admin, "index": 300, "permissions": "111111111111"},
            ),
        ],
        now=now,
    )


async def _issue(session: AsyncSession, enterprise_id: int, now: datetime) -> tuple[str, str]:
    secret, token = new_secret(), new_token()
    for kind, value in (("secret", secret), ("token", token)):
        await repo.add_credential(
            session, enterprise_id=enterprise_id, kind=kind, secret_hash=digest(value), now=now
        )
    return secret, token


def _view(enterprise: Enterprise, prefixes: list[str]) -> EnterpriseView:
    return EnterpriseView(
        name=enterprise.name,
        prefix=prefixes[0],
        prefixes=prefixes,
        status=enterprise.status,
        created_at=clock.as_utc(enterprise.created_at),
    )


async def _find(session: AsyncSession, prefix: str) -> Enterprise:
    enterprise = await repo.owner_of(session, prefix.upper())
    if enterprise is None:
        raise EnterpriseNotFound(f"no enterprise holds prefix {prefix}")
    return enterprise


async def enterprise_view(session: AsyncSession, prefix: str) -> EnterpriseView:
    enterprise = await _find(session, prefix)
    return _view(enterprise, await repo.prefixes_of(session, enterprise.id))


async def list_enterprises(session: AsyncSession) -> list[EnterpriseView]:
    grouped: dict[int, tuple[Enterprise, list[str]]] = {}
    for enterprise, prefix in await repo.all_enterprises(session):
        grouped.setdefault(enterprise.id, (enterprise, []))[1].append(prefix)
    return [_view(e, prefixes) for e, prefixes in grouped.values()]


async def change_status(session: AsyncSession, prefix: str, *, status: str) -> EnterpriseView:
    """Disable (writes refused, identifiers still resolve) or re-enable an enterprise."""
    if status not in {"active", "disabled"}:
        raise InvalidRequest("status must be 'active' or 'disabled'")
    enterprise = await _find(session, prefix)
    await repo.set_status(session, enterprise.id, status)
    enterprise.status = status
    return _view(enterprise, await repo.prefixes_of(session, enterprise.id))


async def rotate_credentials(session: AsyncSession, prefix: str) -> IssuedCredentials:
    """Revoke the enterprise's secret and token and issue new ones (for a leaked secret)."""
    enterprise = await _find(session, prefix)
    now = clock.now()
    await repo.revoke(session, enterprise_id=enterprise.id, kinds=("secret", "token"), now=now)
    secret, token = await _issue(session, enterprise.id, now)
    view = _view(enterprise, await repo.prefixes_of(session, enterprise.id))
    return IssuedCredentials(view, secret, token)


async def ensure_operator_token(session: AsyncSession) -> str | None:
    """Create the operator token on first start; None when one already exists."""
    if await repo.has_operator_credential(session):
        return None
    return await rotate_operator_token(session)


async def rotate_operator_token(session: AsyncSession) -> str:
    """Revoke every stored operator token and return a new one (shown once)."""
    now = clock.now()
    await repo.revoke(session, enterprise_id=None, kinds=("operator",), now=now)
    token = new_token()
    await repo.add_credential(
        session, enterprise_id=None, kind="operator", secret_hash=digest(token), now=now
    )
    return token
