"""A Handle protocol client: one long TCP connection (or one datagram per request over UDP).

Used by the node to resolve through an upstream node that speaks the protocol
(``IDNODE_UPSTREAM_URL=hdl://host:port``), by ``idnode resolve --native``, and by the tests.
Like the CAICT SDK it sends one request at a time per connection and keeps a login on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, padding, rsa

from resolver.handle_protocol import bodies
from resolver.handle_protocol.message import (
    ENVELOPE_SIZE,
    FLAG_RECURSIVE,
    FLAG_REQUEST_DIGEST,
    OC_ADD_VALUE,
    OC_CHALLENGE_RESPONSE,
    OC_CREATE,
    OC_DELETE,
    OC_GET_SITE,
    OC_LOGIN,
    OC_LOGIN_ID_SYSTEM,
    OC_MODIFY_VALUE,
    OC_REMOVE_VALUE,
    OC_RESOLUTION,
    RC_AUTHENTICATION_NEEDED,
    Envelope,
    MalformedMessage,
    Message,
    frame,
    read_envelope,
    read_message,
    udp_datagrams,
)
from resolver.values import HandleValue

DIGEST_SIZES = {1: 16, 2: 20, 3: 32}
PrivateKey = rsa.RSAPrivateKey | dsa.DSAPrivateKey | ec.EllipticCurvePrivateKey
MAX_ANSWER = 16 * 1024 * 1024
REQUEST_LIFETIME = 12 * 3600


class HandleProtocolError(Exception):
    """The server could not be reached, or answered with something that is not a message."""


@dataclass(frozen=True, slots=True)
class Answer:
    """A response: the code, the body (without any request-digest prefix) and the envelope."""

    message: Message
    envelope: Envelope
    body: bytes

    @property
    def code(self) -> int:
        return self.message.response_code

    @property
    def error(self) -> str:
        return bodies.read_error(self.body)

    def values(self) -> tuple[str, list[dict[str, Any]]]:
        """A resolution answer's handle and values (as JSON-form dicts)."""
        return bodies.read_records(self.body)


def request_message(opcode: int, body: bytes, flags: int = 0) -> Message:
    return Message(opcode, body, flags=flags, expiration=int(time.time()) + REQUEST_LIFETIME)


def strip_digest(message: Message) -> bytes:
    """The body after the request digest a response carries when its RD flag is set."""
    body = message.body
    if not message.has(FLAG_REQUEST_DIGEST) or not body:
        return body
    size = DIGEST_SIZES.get(body[0])
    if size is None:
        raise MalformedMessage(f"unknown digest type {body[0]}")
    return body[1 + size :]


class HandleClient:
    """A TCP connection to a Handle server; requests go one after the other."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, wait: float = 10.0
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._wait = wait  # seconds to wait for an answer
        self._ids = itertools.count(secrets.randbelow(2**30) + 1)
        self._lock = asyncio.Lock()

    @classmethod
    async def connect(cls, host: str, port: int, *, wait: float = 10.0) -> HandleClient:
        try:
            async with asyncio.timeout(wait):
                reader, writer = await asyncio.open_connection(host, port)
        except (OSError, TimeoutError) as exc:
            raise HandleProtocolError(f"cannot connect to {host}:{port}: {exc!r}") from exc
        return cls(reader, writer, wait=wait)

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()

    async def send(self, message: Message, *, session_id: int = 0) -> Answer:
        """Send one message and read the answer."""
        packed = message.pack()
        envelope = Envelope(session_id, next(self._ids), len(packed))
        async with self._lock:
            try:
                self._writer.write(frame(envelope, packed))
                await self._writer.drain()
                async with asyncio.timeout(self._wait):
                    head = await self._reader.readexactly(ENVELOPE_SIZE)
                    answered = read_envelope(head, max_length=MAX_ANSWER)
                    data = await self._reader.readexactly(answered.length)
            except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
                raise HandleProtocolError(f"the connection failed: {exc!r}") from exc
        reply = read_message(data)
        return Answer(reply, answered, strip_digest(reply))

    async def request(self, opcode: int, body: bytes, flags: int = 0) -> Answer:
        return await self.send(request_message(opcode, body, flags))

    async def resolve(
        self, handle: str, *, indexes: Sequence[int] = (), types: Sequence[str] = (), flags: int = 0
    ) -> Answer:
        query = bodies.Query(handle, tuple(indexes), tuple(types))
        return await self.request(OC_RESOLUTION, query.pack(), flags)

    async def site(self) -> Answer:
        return await self.request(OC_GET_SITE, bodies.pack_handle("/"))

    async def login(self, user: str, password: str) -> Answer:
        """Password login (opcode 2000): the password travels as the only "type"."""
        return await self.request(OC_LOGIN, bodies.Query(user, (), (password,)).pack())

    async def key_login(self, handle: str, index: int, key: PrivateKey) -> Answer:
        """Public-key login (opcode 2001): answer the node's challenge by signing its nonce and
        the request digest (SHA-256) with ``key``; the final answer carries opcode 2001."""
        challenge = await self.request(
            OC_LOGIN_ID_SYSTEM, bodies.pack_key_login(handle, index), FLAG_REQUEST_DIGEST
        )
        if challenge.code != RC_AUTHENTICATION_NEEDED:
            return challenge
        digest = challenge.message.body[1 : 1 + DIGEST_SIZES.get(challenge.message.body[0], 0)]
        nonce = bodies.read_challenge(challenge.body)
        answer = bodies.ChallengeAnswer(handle, index, "SHA-256", sign(key, nonce + digest))
        message = request_message(
            OC_CHALLENGE_RESPONSE, answer.pack(), FLAG_RECURSIVE | FLAG_REQUEST_DIGEST
        )
        return await self.send(message, session_id=challenge.envelope.session_id)

    async def create(self, handle: str, values: Sequence[HandleValue]) -> Answer:
        return await self.request(OC_CREATE, bodies.pack_values_request(handle, values))

    async def add(self, handle: str, values: Sequence[HandleValue]) -> Answer:
        return await self.request(OC_ADD_VALUE, bodies.pack_values_request(handle, values))

    async def modify(self, handle: str, values: Sequence[HandleValue]) -> Answer:
        return await self.request(OC_MODIFY_VALUE, bodies.pack_values_request(handle, values))

    async def remove(self, handle: str, indexes: Sequence[int]) -> Answer:
        return await self.request(OC_REMOVE_VALUE, bodies.pack_remove_request(handle, indexes))

    async def delete(self, handle: str) -> Answer:
        return await self.request(OC_DELETE, bodies.pack_handle(handle))


def sign(key: PrivateKey, data: bytes) -> bytes:
    """A signature as the CAICT SDK makes it: SHA-256 with RSA (PKCS#1 v1.5), DSA or ECDSA."""
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    if isinstance(key, dsa.DSAPrivateKey):
        return key.sign(data, hashes.SHA256())
    return key.sign(data, ec.ECDSA(hashes.SHA256()))


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: asyncio.Queue[bytes] = asyncio.Queue(maxsize=256)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if not self.received.full():
            self.received.put_nowait(data)


async def udp_request(host: str, port: int, message: Message, *, wait: float = 5.0) -> Answer:
    """One request in one datagram; the answer reassembled from its chunks."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(_Datagrams, remote_addr=(host, port))
    request_id = secrets.randbelow(2**31 - 1) + 1
    try:
        for datagram in udp_datagrams(0, request_id, message.pack()):
            transport.sendto(datagram)
        async with asyncio.timeout(wait):
            return await _reassembled(protocol, request_id)
    except TimeoutError as exc:
        raise HandleProtocolError(f"{host}:{port} did not answer over UDP") from exc
    finally:
        transport.close()


async def _reassembled(protocol: _Datagrams, request_id: int) -> Answer:
    chunks: dict[int, bytes] = {}
    while True:
        data = await protocol.received.get()
        envelope = read_envelope(data, max_length=MAX_ANSWER)
        if envelope.request_id != request_id:
            continue
        chunks[envelope.sequence] = data[ENVELOPE_SIZE:]
        if sum(map(len, chunks.values())) >= envelope.length:
            reply = read_message(b"".join(chunks[i] for i in sorted(chunks)))
            return Answer(reply, envelope, strip_digest(reply))
