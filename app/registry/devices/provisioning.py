"""Provisioning keys: the credentials devices register themselves with.

An enterprise creates a key (name + the template its devices follow); devices send the key and
its secret with each registration. Only the secret's digest is stored, and every registration
reads the key afresh, so a revoked key stops working at once.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import Principal
from app.errors import (
    AuthenticationFailed,
    EnterpriseNotFound,
    InvalidRequest,
    PermissionDenied,
    ProvisioningKeyNotFound,
)
from app.registry import clock
from app.security import digest, new_secret
from app.storage import devices as repo
from app.storage import enterprises as enterprise_repo
from app.storage.models import Enterprise, ProvisioningKey
from resolver.errors import InvalidHandle
from resolver.identifier import parse_prefix

TEMPLATES = ("device",)
KEY_PREFIX = "pk_"


@dataclass(frozen=True)
class KeyView:
    key: str
    name: str
    template: str
    created_at: datetime
    revoked_at: datetime | None

    def as_json(self) -> dict[str, object]:
        return {
            "key": self.key,
            "name": self.name,
            "template": self.template,
            "createdAt": clock.api_time(self.created_at),
            "revokedAt": self.revoked_at.isoformat() if self.revoked_at else None,
        }


@dataclass(frozen=True)
class IssuedKey:
    """A new key with its secret, shown once."""

    view: KeyView
    secret: str

    def as_json(self) -> dict[str, object]:
        return {**self.view.as_json(), "secret": self.secret}


def _view(row: ProvisioningKey) -> KeyView:
    return KeyView(
        row.key,
        row.name,
        row.template,
        clock.as_utc(row.created_at),
        clock.as_utc(row.revoked_at) if row.revoked_at else None,
    )


async def enterprise_of(session: AsyncSession, prefix: str) -> Enterprise:
    """The enterprise holding ``prefix`` (``EnterpriseNotFound`` otherwise)."""
    try:
        canonical = parse_prefix(prefix)
    except InvalidHandle as exc:
        raise EnterpriseNotFound(f"{prefix!r} is not a valid prefix: {exc.message}") from exc
    enterprise = await enterprise_repo.owner_of(session, canonical)
    if enterprise is None:
        raise EnterpriseNotFound(f"no enterprise holds prefix {canonical}")
    return enterprise


async def create_key(session: AsyncSession, prefix: str, *, name: str, template: str) -> IssuedKey:
    """Issue a provisioning key for the enterprise holding ``prefix``."""
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidRequest("provisioning key name must be 1 to 200 characters")
    if template not in TEMPLATES:
        raise InvalidRequest(f"template {template!r} is unknown; known: {', '.join(TEMPLATES)}")
    enterprise = await enterprise_of(session, prefix)
    secret = new_secret()
    row = ProvisioningKey(
        enterprise_id=enterprise.id,
        key=KEY_PREFIX + secrets.token_urlsafe(12),
        name=name,
        template=template,
        secret_hash=digest(secret),
        created_at=clock.now(),
    )
    await repo.add_provisioning_key(session, row)
    return IssuedKey(_view(row), secret)


async def list_keys(session: AsyncSession, prefix: str) -> list[KeyView]:
    enterprise = await enterprise_of(session, prefix)
    return [_view(row) for row in await repo.provisioning_keys_of(session, enterprise.id)]


async def revoke_key(session: AsyncSession, prefix: str, key: str) -> None:
    """Revoke ``key``; registrations using it are refused from now on."""
    enterprise = await enterprise_of(session, prefix)
    if not await repo.revoke_provisioning_key(
        session, enterprise_id=enterprise.id, key=key, now=clock.now()
    ):
        raise ProvisioningKeyNotFound(f"prefix {prefix} has no provisioning key {key!r}")


async def authenticate_device(
    session: AsyncSession, prefix: str, *, key: object, secret: object
) -> Principal:
    """The enterprise a registering device acts for, checked against the topic's prefix."""
    enterprise = await enterprise_of(session, prefix)
    if not isinstance(key, str) or not isinstance(secret, str) or not key or not secret:
        raise AuthenticationFailed("provisionKey and provisionSecret must be non-empty strings")
    row = await repo.active_provisioning_key(session, key)
    if (
        row is None
        or row.enterprise_id != enterprise.id
        or not hmac.compare_digest(row.secret_hash, digest(secret))
    ):
        raise AuthenticationFailed(f"provisioning key {key!r} or its secret is wrong or revoked")
    if enterprise.status != "active":
        raise PermissionDenied("this enterprise is disabled; its registrations are refused")
    prefixes = await enterprise_repo.prefixes_of(session, enterprise.id)
    return Principal("enterprise", enterprise_id=enterprise.id, prefixes=frozenset(prefixes))


async def key_principal(session: AsyncSession, key: ProvisioningKey) -> Principal | None:
    """The enterprise a stored key acts for; None when the key is revoked or the enterprise
    disabled (platform pushes and LoRaWAN events then create nothing)."""
    enterprise = await enterprise_repo.enterprise(session, key.enterprise_id)
    if key.revoked_at is not None or enterprise is None or enterprise.status != "active":
        return None
    prefixes = await enterprise_repo.prefixes_of(session, key.enterprise_id)
    return Principal("enterprise", enterprise_id=enterprise.id, prefixes=frozenset(prefixes))


async def enterprise_key(session: AsyncSession, prefix: str, key: str) -> ProvisioningKey:
    """An active key of the enterprise holding ``prefix``, for platform mappings."""
    enterprise = await enterprise_of(session, prefix)
    row = await repo.active_provisioning_key(session, key)
    if row is None or row.enterprise_id != enterprise.id:
        raise InvalidRequest(f"provisionKey {key!r} is not an active key of {prefix}")
    return row
