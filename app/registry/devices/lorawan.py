"""LoRaWAN applications: which ChirpStack application's devices register under which prefix.

The mapping names a provisioning key of the enterprise; revoking that key stops the
application's devices from registering, as it does for devices registering themselves.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import Principal
from app.errors import ApplicationAlreadyMapped, InvalidRequest
from app.registry import clock
from app.registry.devices.provisioning import enterprise_key, key_principal
from app.storage import devices as repo
from app.storage.models import LorawanApplication


@dataclass(frozen=True)
class MappedApplication:
    application_id: str
    prefix: str
    provision_key: str

    def as_json(self) -> dict[str, str]:
        return {
            "applicationId": self.application_id,
            "prefix": self.prefix,
            "provisionKey": self.provision_key,
        }


def _application_id(text: str) -> str:
    try:
        return str(uuid.UUID(text))
    except (ValueError, AttributeError, TypeError) as exc:
        raise InvalidRequest(f"applicationId {text!r} is not a UUID") from exc


async def map_application(
    session: AsyncSession, prefix: str, *, application_id: str, provision_key: str
) -> MappedApplication:
    """Register the application's devices under ``prefix`` with ``provision_key``."""
    application = _application_id(application_id)
    key = await enterprise_key(session, prefix, provision_key)
    row = LorawanApplication(
        application_id=application,
        prefix=prefix.upper(),
        provisioning_key_id=key.id,
        created_at=clock.now(),
    )
    if not await repo.map_lorawan_application(session, row):
        raise ApplicationAlreadyMapped(f"application {application} is already mapped")
    return MappedApplication(application, row.prefix, key.key)


async def application_owner(
    session: AsyncSession, application_id: str
) -> tuple[str, Principal] | None:
    """The prefix and enterprise an application's devices register for; None when it is not
    mapped, its key is revoked or its enterprise disabled (then nothing is created)."""
    try:
        application = str(uuid.UUID(application_id))
    except ValueError:
        return None
    found = await repo.lorawan_application(session, application)
    if found is None:
        return None
    mapping, key = found
    principal = await key_principal(session, key)
    return (mapping.prefix, principal) if principal is not None else None
