"""``/api/v1/enterprises/{prefix}/users``: the logins an enterprise makes for integrations
written against the SNMS API (they log in at ``/identity/token``)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from app.api.deps import CallerDep, NodeDep, WriteSession, owner_or_operator
from app.registry.clock import as_utc
from app.snms import accounts as service
from app.storage.models import SnmsUser
from app.vault import Vault

router = APIRouter(prefix="/api/v1/enterprises", tags=["SNMS users"])


class UserCreate(BaseModel):
    username: str = Field(examples=["mes-line-3"], description="Unique on the node; 1 to 50.")
    password: str = Field(
        examples=["k8Qz-2mVn-7Lp4"], description="12 to 64 characters; stored hashed."
    )


class UserChange(BaseModel):
    disabled: bool


class User(BaseModel):
    username: str
    disabled: bool
    createdAt: datetime  # noqa: N815 - the API's JSON names


def _view(user: SnmsUser) -> dict[str, object]:
    return {
        "username": user.username,
        "disabled": user.disabled_at is not None,
        "createdAt": as_utc(user.created_at),  # SQLite gives it back without a zone
    }


@router.post("/{prefix}/users", status_code=201, response_model=User)
async def create(
    prefix: str, payload: UserCreate, principal: CallerDep, session: WriteSession, node: NodeDep
) -> dict[str, object]:
    """A login for an SNMS integration of the enterprise (its token or the operator's)."""
    owner_or_operator(principal, prefix)
    user = await service.create_user(
        session,
        prefix,
        username=payload.username,
        password=payload.password,
        vault=Vault(node.settings.node_key_file),
    )
    return _view(user)


@router.get("/{prefix}/users", response_model=list[User])
async def list_users(prefix: str, node: NodeDep, principal: CallerDep) -> list[dict[str, object]]:
    owner_or_operator(principal, prefix)
    async with node.database.read_session() as session:
        return [_view(u) for u in await service.users(session, prefix)]


@router.patch("/{prefix}/users/{username:path}", response_model=User)
async def change(
    prefix: str, username: str, payload: UserChange, principal: CallerDep, session: WriteSession
) -> dict[str, object]:
    """``{"disabled": true}``: its logins and tokens stop working at once."""
    owner_or_operator(principal, prefix)
    user = await service.set_disabled(session, prefix, username, disabled=payload.disabled)
    return _view(user)


@router.delete("/{prefix}/users/{username:path}", status_code=204)
async def delete(
    prefix: str, username: str, principal: CallerDep, session: WriteSession
) -> Response:
    owner_or_operator(principal, prefix)
    await service.delete_user(session, prefix, username)
    return Response(status_code=204)
