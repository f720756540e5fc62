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
        """Values matching any filter (:func:`type_matches`): listed indexes, listed types."""
        if not types and not indexes:
            return self
        return Record(
            self.handle,
            tuple(v for v in self.values if v.index in indexes or type_matches(v.type, types)),
        )

    def min_ttl(self) -> int | None:
        return min((v.ttl for v in self.values), default=None)

    def first(self, vtype: str) -> HandleValue | None:
        return next((v for v in self.values if v.type == vtype), None)


_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def type_matches(vtype: str, filters: Iterable[str]) -> bool:
    """Whether a value's type is asked for by a type filter (the one rule of every read path:
    ``GET /api/handles/...?type=`` and the Handle protocol's resolution).

    As the Handle.Net server compares them: without regard to ASCII case (``url`` asks for
    ``URL``); ``T`` asks for the type ``T`` only, ``T.`` for ``T`` and its dotted sub-types
    (``T.mobile``, ``T.a.b``), not for ``TX``.
    """
    folded = vtype.translate(_ASCII_UPPER)
    for wanted in filters:
        wanted = wanted.translate(_ASCII_UPPER)
        if wanted.endswith("."):
            if folded == wanted[:-1] or folded.startswith(wanted):
                return True
        elif folded == wanted:
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
