"""Device onboarding: provisioning keys (and, for LoRaWAN, mapped ChirpStack applications)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from app.api.deps import CallerDep, NodeDep, WriteSession, owner_or_operator
from app.api.schemas import RequestBody
from app.registry.devices import lorawan, nbiot, provisioning
from app.vault import Vault

router = APIRouter(prefix="/api/v1/enterprises/{prefix}", tags=["Devices"])


class KeyCreate(RequestBody):
    name: str = Field(min_length=1, max_length=200, examples=["line-3 retrofit adapters"])
    template: str = Field("device", description="The template the registered devices follow.")


class Key(BaseModel):
    key: str
    name: str
    template: str
    createdAt: datetime  # noqa: N815 - the API's JSON names
    revokedAt: datetime | None  # noqa: N815


class IssuedKey(Key):
    secret: str = Field(description="Sent by devices as provisionSecret. Shown once.")


@router.post("/provisioning-keys", status_code=201, response_model=IssuedKey)
async def create_key(
    prefix: str, payload: KeyCreate, principal: CallerDep, session: WriteSession
) -> dict[str, object]:
    """Issue a provisioning key for devices registering under ``prefix`` (secret shown once)."""
    owner_or_operator(principal, prefix)
    issued = await provisioning.create_key(
        session, prefix, name=payload.name, template=payload.template
    )
    return issued.as_json()


@router.get("/provisioning-keys", response_model=list[Key])
async def list_keys(prefix: str, principal: CallerDep, node: NodeDep) -> list[dict[str, object]]:
    """The enterprise's provisioning keys, revoked ones included (never their secrets)."""
    owner_or_operator(principal, prefix)
    async with node.database.read_session() as session:
        return [k.as_json() for k in await provisioning.list_keys(session, prefix)]


@router.delete("/provisioning-keys/{key}", status_code=204)
async def revoke_key(
    prefix: str, key: str, principal: CallerDep, session: WriteSession
) -> Response:
    """Revoke a key: registrations with it are refused from the next message on."""
    owner_or_operator(principal, prefix)
    await provisioning.revoke_key(session, prefix, key)
    return Response(status_code=204)


class ApplicationMap(RequestBody):
    applicationId: str = Field(  # noqa: N815
        description="The ChirpStack application's UUID.",
        examples=["3f9a6c2e-1d47-4b8a-a0e5-6c7b2d9e4f10"],
    )
    provisionKey: str = Field(  # noqa: N815
        description="The provisioning key its devices register with (revoke it to stop them)."
    )


class Application(BaseModel):
    applicationId: str  # noqa: N815
    prefix: str
    provisionKey: str  # noqa: N815


@router.post("/lorawan/applications", status_code=201, response_model=Application)
async def map_application(
    prefix: str, payload: ApplicationMap, principal: CallerDep, session: WriteSession
) -> dict[str, str]:
    """Register the devices of a ChirpStack application under ``prefix`` as they join."""
    owner_or_operator(principal, prefix)
    mapped = await lorawan.map_application(
        session, prefix, application_id=payload.applicationId, provision_key=payload.provisionKey
    )
    return mapped.as_json()


class PlatformAccount(RequestBody):
    provisionKey: str = Field(  # noqa: N815
        description="The provisioning key its devices register with (revoke it to stop them)."
    )
    token: str | None = Field(
        None,
        description="OneNET: the push token it signs with (required). CTWing: a token the "
        "push URL must carry as ?token=... (optional).",
    )


@router.put("/nbiot/{platform}")
async def configure_platform(
    prefix: str,
    platform: str,
    payload: PlatformAccount,
    principal: CallerDep,
    session: WriteSession,
    node: NodeDep,
) -> dict[str, object]:
    """Accept pushes from an NB-IoT platform (onenet or ctwing) at
    /api/v1/ingest/{platform}/{prefix}, registering devices by IMEI."""
    owner_or_operator(principal, prefix)
    return await nbiot.configure(
        session,
        prefix,
        platform,
        provision_key=payload.provisionKey,
        token=payload.token,
        vault=Vault(node.settings.node_key_file),
    )
