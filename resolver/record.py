"""A record (an identifier and its values), the views callers may see, and its JSON answer."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from resolver.values import HandleValue, value_json

SUCCESS = 1


@dataclass(frozen=True, slots=True)
class Record:
    """An identifier's values, sorted by index."""

    handle: str
    values: tuple[HandleValue, ...]

    def public(self) -> Record:
        """The values anyone may read."""
        return Record(self.handle, tuple(v for v in self.values if v.public_read))

    def readable_by_admin(self) -> Record:
        """The values the owner may read (public ones, and admin-readable ones)."""
        return Record(self.handle, tuple(v for v in self.values if v.public_read or v.admin_read))

    def select(self, types: Collection[str] = (), indexes: Collection[int] = ()) -> Record:
        """Values matching any filter; a type ending in '.' matches its sub-types too."""
        if not types and not indexes:
            return self
        return Record(
            self.handle,
            tuple(v for v in self.values if v.index in indexes or _type_matches(v.type, types)),
        )

    def min_ttl(self) -> int | None:
        return min((v.ttl for v in self.values), default=None)

    def first(self, vtype: str) -> HandleValue | None:
        return next((v for v in self.values if v.type == vtype), None)


def _type_matches(vtype: str, filters: Iterable[str]) -> bool:
    for wanted in filters:
        if wanted.endswith("."):
            if vtype == wanted[:-1] or vtype.startswith(wanted):
                return True
        elif vtype == wanted:
            return True
    return False


def record_body(record: Record, *, response_code: int = SUCCESS) -> dict[str, Any]:
    return {
        "responseCode": response_code,
        "handle": record.handle,
        "values": [value_json(v) for v in record.values],
    }


def encode(body: dict[str, Any], *, pretty: bool = False) -> bytes:
    return orjson.dumps(body, option=orjson.OPT_INDENT_2 if pretty else 0)
