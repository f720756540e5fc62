"""Handle values and their JSON form (the Handle.Net REST codec).

A value is ``{index, type, data: {format, value}, ttl, timestamp, permissions, references}``.
:func:`parse_values` turns what a client sent into values, refusing anything malformed with
an :class:`InvalidValue` that names the value and the problem. :func:`value_json` is the one
place the outgoing form is decided.
"""

from __future__ import annotations

import base64
import binascii
import math
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from resolver.errors import InvalidHandle, InvalidValue
from resolver.identifier import parse_handle
from resolver.text import first_problem

DEFAULT_TTL = 86400
DEFAULT_PERMISSIONS = "1110"  # admin read, admin write, public read; no public write
MAX_VALUES = 1000
MAX_VALUE_BYTES = 64 * 1024
MAX_INDEX = 2**31 - 1
MAX_TTL = 2**31 - 1
MAX_TYPE_LENGTH = 128
FORMATS = frozenset({"string", "base64", "hex", "admin", "site"})


@dataclass(frozen=True, slots=True)
class Reference:
    """A pointer from a value to a value of another (or the same) identifier."""

    handle: str
    index: int


@dataclass(frozen=True, slots=True)
class HandleValue:
    """One value of a record."""

    index: int
    type: str
    format: str
    value: Any
    ttl: int = DEFAULT_TTL
    timestamp: str = ""
    permissions: str = DEFAULT_PERMISSIONS
    references: tuple[Reference, ...] = field(default=())

    @property
    def public_read(self) -> bool:
        return self.permissions[2] == "1"

    @property
    def admin_read(self) -> bool:
        return self.permissions[0] == "1"

    def same_content(self, other: HandleValue) -> bool:
        """True when only the timestamp differs (a repeated write changes nothing)."""
        return (
            self.index == other.index
            and self.type == other.type
            and self.format == other.format
            and self.value == other.value
            and self.ttl == other.ttl
            and self.permissions == other.permissions
            and self.references == other.references
        )


def value_json(v: HandleValue) -> dict[str, Any]:
    """The Handle REST JSON of one value; default permissions are left out, as Handle does."""
    out: dict[str, Any] = {
        "index": v.index,
        "type": v.type,
        "data": {"format": v.format, "value": v.value},
        "ttl": v.ttl,
        "timestamp": v.timestamp,
    }
    if v.permissions != DEFAULT_PERMISSIONS:
        out["permissions"] = v.permissions
    if v.references:
        out["references"] = [{"handle": r.handle, "index": r.index} for r in v.references]
    return out


def values_from_stored(items: Iterable[Mapping[str, Any]]) -> tuple[HandleValue, ...]:
    """Rebuild values from what :func:`value_json` produced and the store kept (trusted)."""
    return tuple(
        HandleValue(
            index=item["index"],
            type=item["type"],
            format=item["data"]["format"],
            value=item["data"]["value"],
            ttl=item["ttl"],
            timestamp=item["timestamp"],
            permissions=item.get("permissions", DEFAULT_PERMISSIONS),
            references=tuple(
                Reference(r["handle"], r["index"]) for r in item.get("references", ())
            ),
        )
        for item in items
    )


def request_values(body: Any) -> list[Any]:
    """The list of raw values in a PUT body: a list, ``{"values": [...]}``, or one value."""
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        if "values" in body:
            values = body["values"]
            if not isinstance(values, list):
                raise InvalidValue("'values' must be a JSON array of handle values")
            return values
        if "index" in body or "type" in body:
            return [body]
    raise InvalidValue(
        "the body must be a JSON array of handle values or an object with a 'values' array"
    )


def parse_values(raw: list[Any]) -> list[HandleValue]:
    """Validate raw JSON values; every problem names the value it is in."""
    if len(raw) > MAX_VALUES:
        raise InvalidValue(f"{len(raw)} values sent; a record holds at most {MAX_VALUES}")
    values: list[HandleValue] = []
    seen: set[int] = set()
    for position, item in enumerate(raw, start=1):
        value = _parse_value(item, position)
        if value.index in seen:
            raise InvalidValue(f"index {value.index} is used by more than one value")
        seen.add(value.index)
        values.append(value)
    return values


def _parse_value(item: Any, position: int) -> HandleValue:
    where = f"value {position}"
    if not isinstance(item, dict):
        raise InvalidValue(f"{where} must be a JSON object")
    index = item.get("index")
    if type(index) is not int or not 0 < index <= MAX_INDEX:
        raise InvalidValue(f"{where}: 'index' must be a whole number from 1 to {MAX_INDEX}")
    where = f"value with index {index}"
    vtype = item.get("type")
    if not isinstance(vtype, str) or not vtype or len(vtype) > MAX_TYPE_LENGTH:
        raise InvalidValue(f"{where}: 'type' must be a text of 1 to {MAX_TYPE_LENGTH} characters")
    if any(ch.isspace() or unicodedata.category(ch) in {"Cc", "Cs"} for ch in vtype):
        raise InvalidValue(f"{where}: 'type' must not contain spaces or control characters")
    fmt, data = _parse_data(item.get("data"), where)
    ttl = item.get("ttl", DEFAULT_TTL)
    if type(ttl) is not int or not 0 <= ttl <= MAX_TTL:
        raise InvalidValue(f"{where}: 'ttl' must be a whole number of seconds from 0 to {MAX_TTL}")
    permissions = item.get("permissions", DEFAULT_PERMISSIONS)
    if not isinstance(permissions, str) or len(permissions) != 4 or set(permissions) - {"0", "1"}:
        raise InvalidValue(
            f"{where}: 'permissions' must be 4 digits 0/1 "
            "(admin read, admin write, public read, public write), e.g. '1110'"
        )
    return HandleValue(
        index=index,
        type=vtype,
        format=fmt,
        value=data,
        ttl=ttl,
        permissions=permissions,
        references=_parse_references(item.get("references", []), where),
    )


def _parse_data(data: Any, where: str) -> tuple[str, Any]:
    fmt: Any
    value: Any
    if isinstance(data, str):
        fmt, value = "string", data
    elif isinstance(data, dict):
        fmt, value = data.get("format", "string"), data.get("value")
    else:
        raise InvalidValue(f'{where}: \'data\' must be a string or {{"format", "value"}}')
    if not isinstance(fmt, str) or fmt not in FORMATS:
        raise InvalidValue(f"{where}: data format {fmt!r} is not one of {sorted(FORMATS)}")
    if not _finite(value):
        raise InvalidValue(f"{where}: data holds NaN or Infinity, which JSON cannot carry")
    if (found := first_problem(value, "data")) is not None:
        raise InvalidValue(f"{where}: {found}")
    try:
        size = len(orjson.dumps(value))
    except orjson.JSONEncodeError as exc:
        raise InvalidValue(f"{where}: data cannot be represented as JSON ({exc})") from exc
    if size > MAX_VALUE_BYTES:
        raise InvalidValue(f"{where}: data is larger than {MAX_VALUE_BYTES // 1024} KiB")
    if fmt == "admin":
        return fmt, _admin(value, where)
    _check_format(fmt, value, where)
    return fmt, value


def _check_format(fmt: str, value: Any, where: str) -> None:
    if fmt in {"string", "base64", "hex"} and not isinstance(value, str):
        raise InvalidValue(f"{where}: a {fmt} value must be a JSON string")
    if fmt == "base64":
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidValue(f"{where}: value is not valid base64") from exc
    elif fmt == "hex":
        try:
            bytes.fromhex(value)
        except ValueError as exc:
            raise InvalidValue(f"{where}: value is not valid hex") from exc
    elif fmt == "site" and not isinstance(value, dict):
        raise InvalidValue(f"{where}: a site value must be a JSON object")


def _admin(value: Any, where: str) -> dict[str, Any]:
    """The admin value normalised: handle upper-cased prefix, index as a number."""
    if not isinstance(value, dict):
        raise InvalidValue(f"{where}: an admin value must be {{handle, index, permissions}}")
    try:
        handle = str(parse_handle(_text(value.get("handle"), "admin handle", where)))
    except InvalidHandle as exc:
        raise InvalidValue(f"{where}: admin handle is invalid: {exc.message}") from exc
    index = value.get("index")
    if isinstance(index, str) and index.isascii() and index.isdigit() and len(index) <= 10:
        index = int(index)  # pyhandle sends the admin index as a string
    if type(index) is not int or not 0 <= index <= MAX_INDEX:
        raise InvalidValue(f"{where}: admin index must be a whole number from 0 to {MAX_INDEX}")
    permissions = value.get("permissions", "")
    if not isinstance(permissions, str) or not 0 < len(permissions) <= 12:
        raise InvalidValue(f"{where}: admin permissions must be up to 12 digits 0/1")
    if set(permissions) - {"0", "1"}:
        raise InvalidValue(f"{where}: admin permissions must be up to 12 digits 0/1")
    return {**value, "handle": handle, "index": index}


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return True


def _parse_references(raw: Any, where: str) -> tuple[Reference, ...]:
    if not isinstance(raw, list):
        raise InvalidValue(f"{where}: 'references' must be a list of {{handle, index}}")
    refs = []
    for ref in raw:
        if not isinstance(ref, dict):
            raise InvalidValue(f"{where}: each reference must be {{handle, index}}")
        try:
            handle = str(parse_handle(_text(ref.get("handle"), "reference handle", where)))
        except InvalidHandle as exc:
            raise InvalidValue(f"{where}: reference handle is invalid: {exc.message}") from exc
        index = ref.get("index", 0)
        if type(index) is not int or not 0 <= index <= MAX_INDEX:
            raise InvalidValue(
                f"{where}: reference index must be a whole number from 0 to {MAX_INDEX}"
            )
        refs.append(Reference(handle, index))
    return tuple(refs)


def _text(value: Any, what: str, where: str) -> str:
    if not isinstance(value, str):
        raise InvalidValue(f"{where}: {what} must be a string")
    return value
