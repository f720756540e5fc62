"""``/api/v1/node``: what the operator may ask this node process about itself."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse

from app.api.deps import NodeDep, operator
from app.auth import Principal
from app.state import state_of

router = APIRouter(prefix="/api/v1/node", tags=["Node"])


@router.get("/cache")
async def cache_stats(
    node: NodeDep, _: Annotated[Principal, Depends(operator)]
) -> dict[str, float]:
    """This process's resolver cache: hits, misses, negative hits, evictions, loads, size."""
    stats = node.resolver.cache.stats
    answered = stats.hits + stats.negative_hits + stats.misses
    return {
        "hits": stats.hits,
        "misses": stats.misses,
        "negativeHits": stats.negative_hits,
        "staleServed": stats.stale_served,
        "evictions": stats.evictions,
        "loads": stats.loads,
        "entries": stats.entries,
        "bytes": stats.bytes,
        "hitRatio": (stats.hits + stats.negative_hits) / answered if answered else 0.0,
    }


class PemResponse(PlainTextResponse):
    media_type = "application/x-pem-file"


@router.get("/key", response_class=PemResponse)
async def node_key(request: Request) -> PemResponse:
    """The public half of the key that signs this node's reports (PEM), for the top-level
    node to verify ``X-Idnode-Signature``; ``X-Idnode-Key-Id`` names it."""
    key = state_of(request.scope)["reporting"].key
    return PemResponse(key.public_pem, headers={"X-Idnode-Key-Id": key.key_id})
