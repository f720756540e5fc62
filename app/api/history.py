"""``/api/v1/identifiers/{handle}/history`` and ``/trace``: what an identifier was, and what it
is packed in or made from."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from app.api.deps import CallerDep, NodeDep
from app.registry.identifiers import history, trace
from resolver.identifier import parse_handle

router = APIRouter(prefix="/api/v1/identifiers", tags=["History and traceability"])


@router.get("/{handle:handle}/history")
async def history_of(handle: str, node: NodeDep, principal: CallerDep) -> dict[str, Any]:
    """Every create, update and delete of the identifier, oldest first: who, when, which
    indexes changed, and the values after the change (for a delete: the values it had), with
    the template attributes among them typed as ``GET /api/v1/identifiers/{handle}`` shows
    them. Values the caller may not read are left out, and so are changes that touched only
    those."""
    parsed = parse_handle(handle)
    async with node.database.replica_session() as session:
        changes = await history.history_of(session, parsed, principal=principal)
    return {
        "handle": str(parsed),
        "deleted": changes[-1].operation == "delete",
        "changes": [c.as_json() for c in changes],
    }


@router.get("/{handle:handle}/trace")
async def trace_of(
    handle: str,
    node: NodeDep,
    principal: CallerDep,
    direction: Annotated[
        str, Query(description="up: what it is part of (its references); down: what refers to it")
    ] = "up",
    depth: Annotated[
        int, Query(description=f"Levels to walk, 0 to {trace.MAX_DEPTH}.")
    ] = trace.DEFAULT_DEPTH,
) -> dict[str, Any]:
    """Walk the references between identifiers (unit -> case -> pallet, raw batch -> product
    batch) breadth first, each identifier once, at most ``MAX_NODES`` of them, each with its
    values and typed template attributes; references in values the caller may not read are
    not followed."""
    parsed = parse_handle(handle)
    async with node.database.replica_session() as session:
        walked = await trace.trace(
            session, parsed, principal=principal, direction=direction, depth=depth
        )
    return walked.as_json()
