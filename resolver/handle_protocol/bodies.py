"""The body of each operation, in both directions (the server reads what the client writes).

Layouts as the CAICT ID-SDK 2.0.3 sends them (docs/handle-protocol.md): a resolution is the
handle, an index list and a type list; the password login (2000) reuses that layout with the
password as the only "type"; writes carry the handle and whole values.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from resolver.handle_protocol.body import (
    Reader,
    Writer,
    encode_values,
    read_values,
)
from resolver.handle_protocol.message import MalformedMessage
from resolver.values import HandleValue

MAX_FILTERS = 1000


@dataclass(frozen=True, slots=True)
class Query:
    """A resolution (and the layout of a password login): handle, indexes, types."""

    handle: str
    indexes: tuple[int, ...] = ()
    types: tuple[str, ...] = ()

    def pack(self) -> bytes:
        return Writer().text(self.handle).int_list(self.indexes).text_list(self.types).done()

    @classmethod
    def read(cls, body: bytes) -> Query:
        reader = Reader(body)
        handle = reader.text("handle")
        indexes = reader.int_list("indexes") if reader.left else []
        types = reader.text_list("types") if reader.left else []
        reader.end()
        if len(indexes) + len(types) > MAX_FILTERS:
            raise MalformedMessage(f"more than {MAX_FILTERS} filters")
        return cls(handle, tuple(indexes), tuple(types))


def pack_values_request(handle: str, values: Iterable[HandleValue]) -> bytes:
    """Create, add and modify: the handle and whole values."""
    out = Writer().text(handle)
    encode_values(values, out)
    return out.done()


def read_values_request(body: bytes) -> tuple[str, list[dict[str, Any]]]:
    reader = Reader(body)
    handle = reader.text("handle")
    values = read_values(reader)
    reader.end()
    return handle, values


def pack_remove_request(handle: str, indexes: Sequence[int]) -> bytes:
    return Writer().text(handle).int_list(indexes).done()


def read_remove_request(body: bytes) -> tuple[str, list[int]]:
    reader = Reader(body)
    handle = reader.text("handle")
    indexes = reader.int_list("indexes")
    reader.end()
    return handle, indexes


def pack_handle(handle: str) -> bytes:
    """Delete (and get-site, with ``/``): the handle alone."""
    return Writer().text(handle).done()


def read_handle(body: bytes) -> str:
    """The handle at the start of a body; what follows it is ignored (get-site requests from
    other clients carry empty filter lists)."""
    return Reader(body).text("handle")


def pack_key_login(handle: str, index: int) -> bytes:
    return Writer().text(handle).int4(index).done()


def read_key_login(body: bytes) -> tuple[str, int]:
    reader = Reader(body)
    handle, index = reader.text("admin handle"), reader.int4("admin index")
    reader.end()
    return handle, index


@dataclass(frozen=True, slots=True)
class ChallengeAnswer:
    """Opcode 200: the signature over nonce and request digest."""

    handle: str
    index: int
    hash_id: str
    signature: bytes
    auth_type: str = "HS_PUBKEY"

    def pack(self) -> bytes:
        signed = Writer().text(self.hash_id).bytes_(self.signature).done()
        out = Writer().text(self.auth_type).text(self.handle).int4(self.index)
        return out.bytes_(signed).done()

    @classmethod
    def read(cls, body: bytes) -> ChallengeAnswer:
        reader = Reader(body)
        auth_type = reader.text("authentication type")
        handle, index = reader.text("admin handle"), reader.int4("admin index")
        signed = Reader(reader.bytes_("signed response"))
        reader.end()
        hash_id, signature = signed.text("hash id"), signed.bytes_("signature")
        signed.end()
        return cls(handle, index, hash_id, signature, auth_type)


def pack_records(handle: str, values: Iterable[HandleValue]) -> bytes:
    """A resolution answer: the handle and its values."""
    out = Writer().text(handle)
    encode_values(values, out)
    return out.done()


def read_records(body: bytes) -> tuple[str, list[dict[str, Any]]]:
    return read_values_request(body)


def pack_login_answer(identifier: str) -> bytes:
    """Success of a password login: the identifier and an (empty) value count."""
    return Writer().text(identifier).int4(0).done()


def pack_error(message: str) -> bytes:
    return Writer().text(message).done()


def read_error(body: bytes) -> str:
    try:
        return Reader(body).text("message")
    except MalformedMessage:
        return ""


def pack_challenge(nonce: bytes) -> bytes:
    return Writer().bytes_(nonce).done()


def read_challenge(body: bytes) -> bytes:
    return Reader(body).bytes_("nonce")
