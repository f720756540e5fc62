"""Message bodies: the primitive encodings, handle values, and the site record.

"str" is an int4 length and that many bytes; lists are an int4 count and their items. A
:class:`Reader` checks every length and count against the bytes left, so a body that lies
about a length is a :class:`MalformedMessage`, and no count can make it allocate more than
the body holds.
"""

from __future__ import annotations

import base64
import ipaddress
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from resolver.handle_protocol.message import MalformedMessage
from resolver.values import HandleValue

_INT4 = struct.Struct(">i")
_UINT4 = struct.Struct(">I")
_INT2 = struct.Struct(">H")

# Value permissions byte: admin read, admin write, public read, public write (as "1110").
PERMISSION_BITS = 4
# HS_ADMIN permissions: 12 bits, the JSON form's digits read as one binary number
# ("011111110011": create, delete, modify/remove/add value, modify/remove/add admin, read).
ADMIN_PERMISSION_BITS = 12
ADMIN_TYPE = "HS_ADMIN"
TTL_RELATIVE = 0


class Reader:
    """Reads a body from the front, refusing anything that runs past its end."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._at = 0

    @property
    def left(self) -> int:
        return len(self._data) - self._at

    def _take(self, size: int, what: str) -> bytes:
        if size < 0 or size > self.left:
            raise MalformedMessage(f"{what} of {size} bytes runs past the end of the body")
        start = self._at
        self._at += size
        return self._data[start : self._at]

    def int4(self, what: str = "int4") -> int:
        (value,) = _INT4.unpack(self._take(4, what))
        return int(value)

    def uint4(self, what: str = "int4") -> int:
        (value,) = _UINT4.unpack(self._take(4, what))
        return int(value)

    def int2(self, what: str = "int2") -> int:
        (value,) = _INT2.unpack(self._take(2, what))
        return int(value)

    def byte(self, what: str = "byte") -> int:
        return self._take(1, what)[0]

    def bytes_(self, what: str = "string") -> bytes:
        return self._take(self.int4(f"length of {what}"), what)

    def text(self, what: str = "string") -> str:
        raw = self.bytes_(what)
        try:
            return raw.decode()
        except UnicodeDecodeError as exc:
            raise MalformedMessage(f"{what} is not UTF-8") from exc

    def count(self, what: str, item_size: int) -> int:
        """A list's count, refused when the items could not fit in what is left."""
        count = self.int4(f"count of {what}")
        if count < 0 or count * item_size > self.left:
            raise MalformedMessage(f"{count} {what} cannot fit in the {self.left} bytes left")
        return count

    def int_list(self, what: str) -> list[int]:
        return [self.int4(what) for _ in range(self.count(what, 4))]

    def text_list(self, what: str) -> list[str]:
        return [self.text(what) for _ in range(self.count(what, 4))]

    def end(self) -> None:
        if self.left:
            raise MalformedMessage(f"{self.left} unexpected bytes after the body")


class Writer:
    """Builds a body."""

    def __init__(self) -> None:
        self._out = bytearray()

    def int4(self, value: int) -> Writer:
        self._out += _INT4.pack(value)
        return self

    def uint4(self, value: int) -> Writer:
        self._out += _UINT4.pack(value)
        return self

    def int2(self, value: int) -> Writer:
        self._out += _INT2.pack(value)
        return self

    def byte(self, value: int) -> Writer:
        self._out.append(value)
        return self

    def raw(self, data: bytes) -> Writer:
        self._out += data
        return self

    def bytes_(self, data: bytes) -> Writer:
        return self.int4(len(data)).raw(data)

    def text(self, value: str) -> Writer:
        return self.bytes_(value.encode())

    def int_list(self, values: Iterable[int]) -> Writer:
        items = list(values)
        self.int4(len(items))
        for item in items:
            self.int4(item)
        return self

    def text_list(self, values: Iterable[str]) -> Writer:
        items = list(values)
        self.int4(len(items))
        for item in items:
            self.text(item)
        return self

    def done(self) -> bytes:
        return bytes(self._out)


# --- handle values ---


def value_data(v: HandleValue) -> bytes:
    """The bytes a value carries on the wire, from the node's JSON form of it."""
    if v.format == "admin":
        return admin_data(v.value)
    if v.format == "string" and isinstance(v.value, str):
        return v.value.encode()
    if v.format == "base64" and isinstance(v.value, str):
        return base64.b64decode(v.value)
    if v.format == "hex" and isinstance(v.value, str):
        return bytes.fromhex(v.value)
    return orjson.dumps(v.value)  # site and other structured data: their JSON text


def admin_data(value: Any) -> bytes:
    permissions = str(value.get("permissions", "")) or "0"
    return (
        Writer()
        .int2(int(permissions, 2))
        .text(str(value.get("handle", "")))
        .int4(int(value.get("index", 0)))
        .done()
    )


def encode_value(v: HandleValue, out: Writer) -> None:
    out.int4(v.index).uint4(_seconds(v.timestamp)).byte(TTL_RELATIVE).int4(v.ttl)
    out.byte(int(v.permissions, 2)).text(v.type).bytes_(value_data(v))
    out.int4(len(v.references))
    for ref in v.references:
        out.text(ref.handle).int4(ref.index)


def encode_values(values: Iterable[HandleValue], out: Writer) -> None:
    items = list(values)
    out.int4(len(items))
    for v in items:
        encode_value(v, out)


def _seconds(timestamp: str) -> int:
    if not timestamp:
        return 0
    try:
        moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return 0
    return max(0, int(moment.astimezone(UTC).timestamp()))


# The smallest value: index, timestamp, ttl type, ttl, permissions, two empty strings, no refs.
MIN_VALUE_SIZE = 4 + 4 + 1 + 4 + 1 + 4 + 4 + 4


def read_values(reader: Reader) -> list[dict[str, Any]]:
    """Values as raw JSON-form dicts, for :func:`resolver.values.parse_values` to validate (the
    same rules as values sent over HTTP). Data that is UTF-8 becomes a string value, HS_ADMIN
    an admin value, anything else base64."""
    return [read_value(reader) for _ in range(reader.count("values", MIN_VALUE_SIZE))]


def read_value(reader: Reader) -> dict[str, Any]:
    index = reader.int4("value index")
    seconds = reader.uint4("value timestamp")  # a client's clock: the node stamps its own
    reader.byte("TTL type")
    ttl = reader.int4("TTL")
    permissions = reader.byte("permissions")
    vtype = reader.text("value type")
    data = reader.bytes_("value data")
    references = [
        {"handle": reader.text("reference handle"), "index": reader.int4("reference index")}
        for _ in range(reader.count("references", 8))
    ]
    return {
        "index": index,
        "type": vtype,
        "data": _data_json(vtype, data),
        "ttl": ttl,
        "permissions": format(permissions & 0x0F, "04b"),
        "references": references,
        "timestamp": datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def _data_json(vtype: str, data: bytes) -> dict[str, Any]:
    if vtype == ADMIN_TYPE:
        admin = Reader(data)
        permissions = admin.int2("admin permissions")
        handle = admin.text("admin handle")
        index = admin.int4("admin index")
        admin.end()
        bits = format(permissions & 0xFFF, f"0{ADMIN_PERMISSION_BITS}b")
        return {"format": "admin", "value": {"handle": handle, "index": index, "permissions": bits}}
    try:
        return {"format": "string", "value": data.decode()}
    except UnicodeDecodeError:
        return {"format": "base64", "value": base64.b64encode(data).decode()}


# --- the site record (HS_SITE, the answer to OC_GET_SITE) ---

INTERFACE_ADMIN_AND_QUERY = 3
PROTOCOL_UDP, PROTOCOL_TCP = 0, 1
PRIMARY = 0x80


@dataclass(frozen=True, slots=True)
class Site:
    """One server answering on TCP and UDP at ``address:port``."""

    address: bytes  # 16 bytes; IPv4 right-aligned after 12 zero bytes
    port: int
    description: str
    serial: int = 1


def ip_bytes(host: str) -> bytes:
    """16 address bytes for HS_SITE; zeros for a wildcard or a name."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return bytes(16)
    if address.version == 4:
        return bytes(12) + address.packed
    return address.packed


def encode_site(site: Site) -> bytes:
    """The site record: TCP first, so the CAICT SDK sends every request over TCP."""
    out = Writer().int2(1).byte(2).byte(10).int2(site.serial).byte(PRIMARY).byte(0).text("")
    out.int4(1).text("desc").text(site.description)
    out.int4(1).int4(1).raw(site.address).bytes_(b"")
    out.int4(2)
    out.byte(INTERFACE_ADMIN_AND_QUERY).byte(PROTOCOL_TCP).int4(site.port)
    out.byte(INTERFACE_ADMIN_AND_QUERY).byte(PROTOCOL_UDP).int4(site.port)
    return out.done()
