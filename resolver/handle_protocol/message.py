"""The Handle protocol's frames (RFC 3652): the 20-byte envelope and the message behind it.

A message is a 24-byte header, a body and a credential section (an int4 length, then that
many bytes). Everything is big-endian. Reading refuses anything malformed with
:class:`MalformedMessage` (response code 4), never with an ``IndexError`` or ``struct.error``:
every length read from the wire is checked against what is left before it is used.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field

from resolver.errors import ResolverError

ENVELOPE_SIZE = 20
HEADER_SIZE = 24
# Bytes 0-3 of the envelope: version 2.10, then the low two bits of byte 2 carry the
# suggested major version (2) and byte 3 the suggested minor (10), as the CAICT SDK sends.
MAJOR, MINOR = 2, 10
SUGGESTED_MAJOR, SUGGESTED_MINOR = 2, 10
UDP_CHUNK = 492  # message bytes per datagram: 512-byte datagrams less the envelope

# Opcodes.
OC_RESOLUTION = 1
OC_GET_SITE = 2
OC_CREATE = 100
OC_DELETE = 101
OC_ADD_VALUE = 102
OC_REMOVE_VALUE = 103
OC_MODIFY_VALUE = 104
OC_CHALLENGE_RESPONSE = 200
OC_LOGIN = 2000  # CAICT: password login
OC_LOGIN_ID_SYSTEM = 2001  # CAICT: public-key login

# Response codes the CAICT SDK knows (others make it throw "unknown response code").
RC_SUCCESS = 1
RC_ERROR = 2
RC_SERVER_BUSY = 3
RC_PROTOCOL_ERROR = 4
RC_OPERATION_NOT_SUPPORTED = 5
RC_HANDLE_NOT_FOUND = 100
RC_HANDLE_ALREADY_EXISTS = 101
RC_INVALID_HANDLE = 102
RC_VALUES_NOT_FOUND = 200
RC_VALUE_ALREADY_EXISTS = 201
RC_INVALID_VALUE = 202
RC_INVALID_ADMIN = 400
RC_INSUFFICIENT_PERMISSIONS = 401
RC_AUTHENTICATION_NEEDED = 402
RC_AUTHENTICATION_FAILED = 403
RC_INVALID_CREDENTIAL = 404
RC_AUTHEN_TIMEOUT = 405
RC_LOGIN_FIRST = 408

# Operation flags (header bytes 8-11).
FLAG_AUTHORITATIVE = 0x80000000
FLAG_CERTIFY = 0x40000000
FLAG_ENCRYPT = 0x20000000
FLAG_RECURSIVE = 0x10000000
FLAG_CACHE_CERTIFY = 0x08000000
FLAG_CONTINUOUS = 0x04000000
FLAG_KEEP_ALIVE = 0x02000000
FLAG_PUBLIC_ONLY = 0x01000000
FLAG_REQUEST_DIGEST = 0x00800000

HASH_SHA256 = 3
SHA256_SIZE = 32

_ENVELOPE = struct.Struct(">BBBBiiiI")
_HEADER = struct.Struct(">iiIHBBII")
_INT4 = struct.Struct(">i")


class MalformedMessage(ResolverError):
    """Bytes that are not a Handle protocol message (truncated, lengths that lie, garbage)."""

    response_code = RC_PROTOCOL_ERROR


@dataclass(frozen=True, slots=True)
class Envelope:
    """The 20 bytes in front of every message (and of every UDP datagram)."""

    session_id: int
    request_id: int
    length: int  # of the whole message (on UDP: of all chunks together)
    sequence: int = 0
    major: int = MAJOR
    minor: int = MINOR
    flags: int = SUGGESTED_MAJOR  # high bits: compressed/encrypted/truncated; low 2: suggested
    suggested_minor: int = SUGGESTED_MINOR

    def pack(self) -> bytes:
        return _ENVELOPE.pack(
            self.major,
            self.minor,
            self.flags,
            self.suggested_minor,
            self.session_id,
            self.request_id,
            self.sequence,
            self.length,
        )


def read_envelope(data: bytes | bytearray | memoryview, *, max_length: int) -> Envelope:
    """The envelope at the start of ``data``; its length must be within ``max_length``."""
    if len(data) < ENVELOPE_SIZE:
        raise MalformedMessage(f"an envelope is {ENVELOPE_SIZE} bytes; got {len(data)}")
    major, minor, flags, suggested, session, request, sequence, length = _ENVELOPE.unpack_from(data)
    if length < HEADER_SIZE + 4:
        raise MalformedMessage(f"message length {length} is shorter than a message header")
    if length > max_length:
        raise MalformedMessage(f"message length {length} exceeds the limit of {max_length} bytes")
    if sequence < 0:
        raise MalformedMessage(f"negative sequence number {sequence}")
    return Envelope(session, request, length, sequence, major, minor, flags, suggested)


@dataclass(frozen=True, slots=True)
class Message:
    """A request or response: header fields, the body, and the credential section."""

    opcode: int
    body: bytes = b""
    response_code: int = 0
    flags: int = 0
    expiration: int = 0  # seconds since the epoch
    site_serial: int = 0xFFFF
    recursion: int = 0
    credential: bytes = field(default=b"", repr=False)

    def pack(self) -> bytes:
        header = _HEADER.pack(
            self.opcode,
            self.response_code,
            self.flags,
            self.site_serial,
            self.recursion,
            0,
            self.expiration,
            len(self.body),
        )
        return header + self.body + _INT4.pack(len(self.credential)) + self.credential

    def has(self, flag: int) -> bool:
        return bool(self.flags & flag)


def read_message(data: bytes | bytearray | memoryview) -> Message:
    """A whole message (header, body, credential section); trailing bytes are refused."""
    data = bytes(data)
    if len(data) < HEADER_SIZE:
        raise MalformedMessage(f"a message header is {HEADER_SIZE} bytes; got {len(data)}")
    opcode, code, flags, serial, recursion, _, expiration, body_length = _HEADER.unpack_from(data)
    body_end = HEADER_SIZE + body_length
    if body_end + 4 > len(data):
        raise MalformedMessage(
            f"body length {body_length} runs past the end of the {len(data)}-byte message"
        )
    (credential_length,) = _INT4.unpack_from(data, body_end)
    if credential_length < 0 or body_end + 4 + credential_length != len(data):
        raise MalformedMessage("the credential section does not end where the message does")
    return Message(
        opcode=opcode,
        body=data[HEADER_SIZE:body_end],
        response_code=code,
        flags=flags,
        expiration=expiration,
        site_serial=serial,
        recursion=recursion,
        credential=data[body_end + 4 :],
    )


def request_digest(request: Message) -> bytes:
    """The RD prefix of a response: hash type, then SHA-256 of the request's header and body."""
    header_and_body = request.pack()[: HEADER_SIZE + len(request.body)]
    return bytes([HASH_SHA256]) + hashlib.sha256(header_and_body).digest()


def frame(envelope: Envelope, message: bytes) -> bytes:
    """Envelope and message in one piece (the SDK mis-reads an envelope split across reads)."""
    return envelope.pack() + message


def udp_datagrams(session_id: int, request_id: int, message: bytes) -> list[bytes]:
    """A message cut into datagrams of at most 512 bytes, each with its sequence number and the
    total length in its envelope."""
    chunks = [message[i : i + UDP_CHUNK] for i in range(0, len(message), UDP_CHUNK)] or [b""]
    return [
        Envelope(session_id, request_id, len(message), sequence).pack() + chunk
        for sequence, chunk in enumerate(chunks)
    ]
