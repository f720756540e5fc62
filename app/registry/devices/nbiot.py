"""NB-IoT platforms (OneNET, CTWing) that push device messages to the node over HTTP.

The enterprise configures, per platform, the provisioning key its devices register with and
the push token the platform signs with (stored encrypted, ``app/vault.py``); revoking the key
stops the registrations.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import Principal
from app.errors import InvalidRequest
from app.registry import clock
from app.registry.devices.provisioning import enterprise_key, key_principal
from app.storage import devices as repo
from app.storage.models import NbiotPlatform
from app.vault import Vault
from resolver.errors import InvalidHandle
from resolver.identifier import parse_prefix

PLATFORMS = ("onenet", "ctwing")


@dataclass(frozen=True)
class PlatformAccount:
    """What an ingest request needs: the token to check and who registers the devices."""

    prefix: str
    token: str | None
    principal: Principal


def _platform(name: str) -> str:
    if name not in PLATFORMS:
        raise InvalidRequest(f"platform {name!r} is not one of {', '.join(PLATFORMS)}")
    return name


async def configure(
    session: AsyncSession,
    prefix: str,
    platform: str,
    *,
    provision_key: str,
    token: str | None,
    vault: Vault,
) -> dict[str, object]:
    """Set (or replace) the enterprise's account on ``platform``; the token is stored sealed
    by ``vault``."""
    platform = _platform(platform)
    if platform == "onenet" and not token:
        raise InvalidRequest("OneNET signs its pushes: token is required")
    if token is not None and not 1 <= len(token) <= 128:
        raise InvalidRequest("token must be 1 to 128 characters")
    key = await enterprise_key(session, prefix, provision_key)
    canonical = parse_prefix(prefix)
    row = NbiotPlatform(
        prefix=canonical,
        platform=platform,
        token=vault.seal(token, belongs_to=_row(canonical, platform)) if token else None,
        provisioning_key_id=key.id,
        created_at=clock.now(),
    )
    await repo.save_nbiot_platform(session, row)
    return {"prefix": row.prefix, "platform": platform, "provisionKey": key.key}


def _row(prefix: str, platform: str) -> str:
    """What a sealed token belongs to (it opens for this row only)."""
    return f"nbiot_platforms/{prefix}/{platform}"


async def account(
    session: AsyncSession, prefix: str, platform: str, *, vault: Vault
) -> PlatformAccount | None:
    """The configured account (its token opened by ``vault``); None when there is none or
    its key no longer works."""
    try:
        canonical = parse_prefix(prefix)
    except InvalidHandle:
        return None
    found = await repo.nbiot_platform(session, prefix=canonical, platform=platform)
    if found is None:
        return None
    row, key = found
    principal = await key_principal(session, key)
    if principal is None:
        return None
    token = vault.open(row.token, belongs_to=_row(canonical, platform)) if row.token else None
    return PlatformAccount(canonical, token, principal)
