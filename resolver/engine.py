"""The resolution engine: decides who answers for an identifier and asks them.

It works over a :class:`Store` so it needs no database library; the node passes its own.
"""

from __future__ import annotations

from typing import Protocol

from resolver.errors import HandleNotFound, NotResponsible
from resolver.identifier import PREFIX_RECORD_PREFIX, Handle
from resolver.record import Record


class Store(Protocol):
    """Where this node keeps the records of the prefixes it hosts."""

    async def fetch(self, handle: str) -> Record | None: ...


def within(prefix: str, parent: str) -> bool:
    """True when ``prefix`` is ``parent`` or derived from it (``88.999.1`` within ``88.999``)."""
    return prefix == parent or prefix.startswith(parent + ".")


class Resolver:
    """Resolves identifiers: local ones from the store, the rest is not this node's."""

    def __init__(self, store: Store, *, node_prefix: str) -> None:
        self._store = store
        self._node_prefix = node_prefix

    def is_local(self, handle: Handle) -> bool:
        """Whether the identifier lives under this node's prefix (including ``0.NA/`` records)."""
        if handle.prefix == PREFIX_RECORD_PREFIX:
            return within(handle.suffix, self._node_prefix)
        return within(handle.prefix, self._node_prefix)

    async def resolve(self, handle: Handle) -> Record:
        """The full record; callers narrow it to what the asker may see."""
        if not self.is_local(handle):
            raise NotResponsible(
                f"this node holds prefix {self._node_prefix} only and has no upstream "
                f"to resolve {handle} through"
            )
        record = await self._store.fetch(str(handle))
        if record is None:
            raise HandleNotFound(f"handle {handle} not found")
        return record
