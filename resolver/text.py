"""Text the node takes from outside, on every door (HTTP, MQTT, device platforms, the native
Handle protocol): checked once, where it comes in.

PostgreSQL cannot store U+0000 in text, and no identifier, name or value has a use for control
characters, so both are refused with an error that names the field. Tab, line feed and
carriage return stay allowed: descriptions and notes are written on several lines. Lone
surrogates (which JSON can carry but UTF-8 cannot encode) are refused too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

_FORBIDDEN = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def problem(text: str) -> str | None:
    """What is wrong with ``text`` (e.g. ``"contains the control character U+0000 at position
    3"``), or None when it may be stored."""
    found = _FORBIDDEN.search(text)
    if found is None:
        return None
    code = ord(found.group())
    kind = "a lone surrogate" if 0xD800 <= code <= 0xDFFF else "the control character"
    return f"contains {kind} U+{code:04X} at position {found.start()}"


def first_problem(value: object, field: str) -> str | None:
    """The first forbidden text anywhere in a JSON-like ``value`` (keys included), as
    ``"<field path>: <problem>"``; None when all of it may be stored."""
    if isinstance(value, str):
        found = problem(value)
        return f"{field}: {found}" if found else None
    if isinstance(value, Mapping):
        for key, item in value.items():
            where = f"{field}.{key}" if isinstance(key, str) and not problem(key) else field
            if isinstance(key, str) and (found := problem(key)):
                return f"{field}: a key {found}"
            if (found := first_problem(item, where)) is not None:
                return found
    elif isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        for position, item in enumerate(value):
            if (found := first_problem(item, f"{field}[{position}]")) is not None:
                return found
    return None
