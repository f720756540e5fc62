"""Traceability: walking the Handle ``references`` between identifiers.

Packaging aggregation and supply-chain steps are references from a record's values to other
identifiers (unit -> case -> pallet, raw-material batch -> product batch). ``up`` follows a
record's own references; ``down`` finds the records that reference it, through the reference
index the write path keeps. The walk is breadth first, never visits an identifier twice (so
cycles end), stops at ``depth`` and at ``MAX_NODES``.

Every node is shown through the same rule as a resolve, and a reference is followed only when
the value carrying it is one the caller may read: a reference in a restricted value leads
nowhere for a caller who cannot read that value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import Principal
from app.errors import InvalidRequest
from app.registry.identifiers.handles import can_read_restricted
from app.registry.identifiers.history import visible
from app.registry.identifiers.templated import TemplatesOf, attributes_view
from app.registry.templates.definitions import Template
from app.storage import handles as handles_repo
from app.storage import history as history_repo
from resolver.errors import HandleNotFound
from resolver.identifier import Handle, parse_handle
from resolver.record import Record
from resolver.values import value_json, values_from_stored

DIRECTIONS = ("up", "down")
DEFAULT_DEPTH = 5
MAX_DEPTH = 20
MAX_NODES = 200


@dataclass(frozen=True)
class Node:
    handle: str
    depth: int
    record: Record | None  # None: referenced, but not held on this node
    template: Template | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "handle": self.handle,
            "depth": self.depth,
            "found": self.record is not None,
            "attributes": attributes_view(self.record, self.template) if self.record else {},
            "values": [value_json(v) for v in self.record.values] if self.record else [],
        }


@dataclass
class Trace:
    handle: str
    direction: str
    depth: int
    nodes: list[Node] = field(default_factory=list)
    edges: list[tuple[str, str]] = field(default_factory=list)
    truncated: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "handle": self.handle,
            "direction": self.direction,
            "depth": self.depth,
            "nodes": [n.as_json() for n in self.nodes],
            "edges": [{"from": a, "to": b} for a, b in self.edges],
            "truncated": self.truncated,
        }


def check_walk(direction: str, depth: int) -> None:
    if direction not in DIRECTIONS:
        raise InvalidRequest(f"direction must be 'up' or 'down', got {direction!r}")
    if not 0 <= depth <= MAX_DEPTH:
        raise InvalidRequest(f"depth must be a whole number from 0 to {MAX_DEPTH}, got {depth}")


class _Walk:
    """One walk: the caller's views of the records it met, loaded a level at a time."""

    def __init__(self, session: AsyncSession, principal: Principal) -> None:
        self.session = session
        self.principal = principal
        self.templates = TemplatesOf(session)

    async def node(self, handle: str, depth: int, record: Record | None) -> Node:
        return Node(handle, depth, record, await self.templates(record))

    async def views(self, names: list[str]) -> dict[str, Record]:
        """What the caller reads of each of ``names`` held here (absent ones are left out)."""
        stored = await handles_repo.stored_many(self.session, names)
        out = {}
        for name, values in stored.items():
            privileged = await can_read_restricted(self.session, self.principal, parse_handle(name))
            out[name] = visible(Record(name, values_from_stored(values)), privileged=privileged)
        return out

    async def next_level(self, level: dict[str, Record], direction: str) -> list[tuple[str, str]]:
        """Edges ``(from, to)`` leaving ``level`` the caller may follow."""
        if direction == "up":
            return [(name, target) for name, view in level.items() for target in _targets(view)]
        pairs = await history_repo.referrers(self.session, list(level))
        sources = await self.views(sorted({source for source, _ in pairs}))
        return [
            (source, target)
            for source, target in pairs
            if source in sources and target in _targets(sources[source])
        ]


def _targets(view: Record) -> list[str]:
    seen: dict[str, None] = {}
    for value in view.values:
        for reference in value.references:
            if reference.handle != view.handle:
                seen.setdefault(reference.handle)
    return list(seen)


async def trace(
    session: AsyncSession,
    handle: Handle,
    *,
    principal: Principal,
    direction: str = "up",
    depth: int = DEFAULT_DEPTH,
) -> Trace:
    """Walk the references from ``handle`` up (what it belongs to) or down (what belongs to it)."""
    check_walk(direction, depth)
    walk = _Walk(session, principal)
    root = str(handle)
    level = await walk.views([root])
    if root not in level:
        raise HandleNotFound.of(root)
    result = Trace(root, direction, depth, nodes=[await walk.node(root, 0, level[root])])
    seen = {root}
    for distance in range(1, depth + 1):
        if not level:
            break
        edges = await walk.next_level(level, direction)
        ends = dict.fromkeys(b if direction == "up" else a for a, b in edges)
        fresh = [n for n in ends if n not in seen]
        if len(result.nodes) + len(fresh) > MAX_NODES:
            fresh = fresh[: MAX_NODES - len(result.nodes)]
            result.truncated = True
        seen.update(fresh)
        result.edges += [(a, b) for a, b in edges if a in seen and b in seen]
        found = await walk.views(fresh)
        result.nodes += [await walk.node(n, distance, found.get(n)) for n in fresh]
        level = {n: found[n] for n in fresh if n in found}
        if result.truncated:
            break
    return result
