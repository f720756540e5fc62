"""A record a bulk load creates, with everything its rows need worked out when it is made.

Bulk loads check one chunk while the chunk before it is written
(``app/registry/identifiers/bulk_load.py``), so whatever per-record work can be done before the
write is done here, at construction: the stored JSON text (written to ``handles`` and to its
first history entry), the searchable rows and the identifiers its values reference. The write
then only moves rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from app.storage.attributes import ClaimKey, attribute_rows


def targets_of(handle: str, values: Iterable[Mapping[str, Any]]) -> set[str]:
    """The identifiers ``handle``'s values reference (not itself)."""
    return {r["handle"] for v in values for r in v.get("references", ())} - {handle}


@dataclass(frozen=True, slots=True)
class NewRecord:
    """A record to create, with the unique values it claims (key, value index)."""

    handle: str
    prefix: str
    values: list[dict[str, Any]]
    claims: tuple[tuple[ClaimKey, int], ...] = ()
    document: str = field(init=False)  # the values as stored JSON text
    searchable: list[dict[str, Any]] = field(init=False)  # rows of attribute_values
    targets: list[str] = field(init=False)  # referenced identifiers, sorted

    def __post_init__(self) -> None:
        object.__setattr__(self, "document", orjson.dumps(self.values).decode())
        object.__setattr__(self, "searchable", attribute_rows(self.handle, self.values))
        object.__setattr__(self, "targets", sorted(targets_of(self.handle, self.values)))
