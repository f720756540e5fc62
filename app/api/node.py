"""``/api/v1/node``: what the operator may ask this node process about itself."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from app.api.deps import NodeDep, operator
from app.auth import Principal

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
