"""``/api/v1/identifiers/{handle}/recall`` and ``/scans``: recalling an identifier (and
everything below it in its trace), and the scans of its public page by day."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from app.api.deps import CallerDep, NodeDep, WriteSession, owner_or_operator
from app.errors import InvalidRequest
from app.registry import clock
from app.registry.identifiers import recalls, scans
from resolver.identifier import parse_handle

router = APIRouter(prefix="/api/v1/identifiers", tags=["Recalls and scans"])
MAX_SCAN_DAYS = 366


class RecallRequest(BaseModel):
    reason: str = Field(
        description="Why it is recalled; shown on its page and on everything below it.",
        examples=["Aflatoxin M1 above the limit in batch B20260301-01"],
    )


@router.post("/{handle:path}/recall", summary="Recall an identifier and everything below it")
async def recall(
    handle: str,
    payload: RecallRequest,
    node: NodeDep,
    principal: CallerDep,
    session: WriteSession,
) -> dict[str, Any]:
    """The owner (or the operator) marks it recalled: its answers, and those of every
    identifier below it in the trace (cases, units), carry a ``RECALL`` value with the reason,
    and their pages a warning. Repeating it restates the reason."""
    view = await recalls.recall(
        session,
        handle,
        principal=principal,
        node_prefix=node.settings.node_prefix,
        reason=payload.reason,
    )
    node.activity.recalls["recall"] += 1
    return view.as_json()


@router.delete("/{handle:path}/recall", summary="Lift a recall")
async def undo(
    handle: str, node: NodeDep, principal: CallerDep, session: WriteSession
) -> dict[str, Any]:
    """Lift the recall (owner or operator); lifting one that is not recalled changes nothing."""
    view = await recalls.undo(
        session, handle, principal=principal, node_prefix=node.settings.node_prefix
    )
    node.activity.recalls["undo"] += 1
    return view.as_json()


@router.get("/{handle:path}/scans", summary="Scans of the identifier's page, by day")
async def scans_of(
    handle: str,
    node: NodeDep,
    principal: CallerDep,
    start: Annotated[date | None, Query(alias="from", description="First day (UTC).")] = None,
    end: Annotated[
        date | None, Query(alias="to", description="Last day (UTC), today by default.")
    ] = None,
) -> dict[str, Any]:
    """How often its public page (``GET /{handle}``) was opened each UTC day, for its owner or
    the operator; days without scans are left out, at most 366 days at once. Counts reach the
    database in batches, so the last few seconds may be missing."""
    parsed = parse_handle(handle)
    owner_or_operator(principal, parsed.prefix)
    last = end or clock.now().date()
    first = start or last - timedelta(days=29)
    if first > last or (last - first).days >= MAX_SCAN_DAYS:
        raise InvalidRequest(f"from must not be after to, and at most {MAX_SCAN_DAYS} days apart")
    async with node.database.read_session() as session:
        days = await scans.by_day(session, str(parsed), first, last)
    return {
        "handle": str(parsed),
        "from": first.isoformat(),
        "to": last.isoformat(),
        "days": [{"day": day.isoformat(), "scans": n} for day, n in days],
        "total": sum(n for _, n in days),
    }
