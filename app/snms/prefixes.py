"""``/snms/api/prefix/query``: one of the caller's prefixes, in SNMS's words."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import Principal
from app.errors import AuthenticationRequired, EnterpriseNotFound, PermissionDenied
from app.registry.clock import as_utc
from app.snms.accounts import CHINA
from app.storage import enterprises as enterprise_repo
from app.storage import snms as repo
from resolver.identifier import parse_prefix

ENABLED, DISABLED = 1, 0


async def prefix_view(
    session: AsyncSession, principal: Principal, text: str, *, registrar: str
) -> dict[str, Any]:
    """The prefix with its enterprise (the operator may ask for any, others for their own)."""
    if principal.is_anonymous:
        raise AuthenticationRequired("this needs a token (POST /identity/token)")
    prefix = parse_prefix(text)
    if not (principal.is_operator or principal.owns(prefix)):
        raise PermissionDenied(f"prefix {prefix} is not yours")
    row = await repo.prefix_row(session, prefix)
    enterprise = await enterprise_repo.owner_of(session, prefix)
    if row is None or enterprise is None:
        raise EnterpriseNotFound(f"前缀不存在: prefix {prefix} is not allocated on this node")
    return {
        "prefix": prefix,
        "createDate": as_utc(row.created_at).astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S"),
        "ghrName": registrar,
        "status": ENABLED if enterprise.status == "active" else DISABLED,
        "entNameCn": enterprise.name,
        "entWebSite": "",
        "entSite": "",
        "entIndustry": "",
        "entAddrCn": "",
        "entDesc": "",
    }
