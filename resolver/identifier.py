"""Identifier grammar: ``prefix/suffix`` (docs/domain.md section 2).

The prefix is case-insensitive (ASCII upper-cased for storage and lookup), the suffix is
case-sensitive and may hold ``/``, ``:`` and ``.``. ``0.NA/<prefix>`` names the record of a
prefix, so its suffix is a prefix too and is normalised like one.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from resolver.errors import InvalidHandle

MAX_PREFIX_LENGTH = 64
MAX_HANDLE_LENGTH = 255
PREFIX_RECORD_PREFIX = "0.NA"

_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")  # no control characters, no surrogates


@dataclass(frozen=True, slots=True)
class Handle:
    """A parsed, normalised identifier."""

    prefix: str
    suffix: str

    def __str__(self) -> str:
        return f"{self.prefix}/{self.suffix}"


def parse_prefix(text: str, *, what: str = "prefix") -> str:
    """Validate a prefix and return it normalised (ASCII upper case)."""
    if not isinstance(text, str):
        raise InvalidHandle(f"{what} must be a string")
    if not text:
        raise InvalidHandle(f"{what} is empty")
    if len(text) > MAX_PREFIX_LENGTH:
        raise InvalidHandle(
            f"{what} is {len(text)} characters long; at most {MAX_PREFIX_LENGTH} are allowed"
        )
    for position, segment in enumerate(text.split("."), start=1):
        if not segment:
            raise InvalidHandle(f"{what} {text!r} has an empty segment (segment {position})")
        if not _SEGMENT.fullmatch(segment):
            bad = next(ch for ch in segment if not _SEGMENT.fullmatch(ch))
            raise InvalidHandle(
                f"{what} segment {segment!r} contains {bad!r}; segments may hold only "
                "letters A-Z, digits, '-' and '_'"
            )
    return text.upper()


def parse_handle(text: str) -> Handle:
    """Parse ``prefix/suffix``; raise :class:`InvalidHandle` saying what is wrong."""
    if not isinstance(text, str):
        raise InvalidHandle("an identifier must be a string")
    if len(text) > MAX_HANDLE_LENGTH:
        raise InvalidHandle(
            f"identifier is {len(text)} characters long; at most {MAX_HANDLE_LENGTH} are allowed"
        )
    prefix, slash, suffix = text.partition("/")
    if not slash:
        raise InvalidHandle(
            f"identifier {text!r} has no '/' between prefix and suffix "
            "(expected e.g. 88.999.1/MILK-2026-000123)"
        )
    prefix = parse_prefix(prefix)
    if not suffix:
        raise InvalidHandle(f"identifier {text!r} has an empty suffix")
    _check_suffix(suffix)
    if prefix == PREFIX_RECORD_PREFIX:
        suffix = parse_prefix(suffix, what="prefix named by 0.NA")
    return Handle(prefix, suffix)


def _check_suffix(suffix: str) -> None:
    if _PRINTABLE_ASCII.fullmatch(suffix):
        return
    for position, ch in enumerate(suffix, start=1):
        category = unicodedata.category(ch)
        if category == "Cc":
            raise InvalidHandle(
                f"suffix contains the control character U+{ord(ch):04X} at position {position}"
            )
        if category == "Cs":
            raise InvalidHandle(f"suffix is not valid Unicode (lone surrogate at {position})")
