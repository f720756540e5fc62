"""The node's Handle protocol listener: TCP and UDP on one port, in every worker process.

TCP connections are long: each serves requests one after the other and keeps its login
(the CAICT SDK opens one socket per channel and never reconnects). A connection that sends
nothing for ``idle_timeout`` seconds, or takes longer than that to send one message, is
closed; a message longer than ``max_message`` bytes, or an envelope that cannot be one, is
answered with a protocol error and the connection closed (its framing is lost). Memory per
connection is bounded by ``max_message``.

UDP takes one request per datagram and answers in datagrams of at most 512 bytes (larger
answers are split into numbered chunks, each naming the total length).

Both sockets are opened with SO_REUSEPORT so that with ``--workers N`` every worker listens
on the same port and the kernel spreads connections and datagrams over them.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any, cast

from app.ports import PortTaken
from gateways.handle.operations import Operations, Session, reply
from resolver.handle_protocol import bodies
from resolver.handle_protocol.message import (
    ENVELOPE_SIZE,
    HEADER_SIZE,
    RC_PROTOCOL_ERROR,
    RC_SERVER_BUSY,
    UDP_CHUNK,
    Envelope,
    MalformedMessage,
    Message,
    read_envelope,
    read_message,
    udp_datagrams,
)

log = logging.getLogger("gateways.handle")
VERSION = Envelope(0, 0, 0).pack()[:4]  # what every answer's envelope starts with
_ANSWER_HEAD = struct.Struct(">iiiI")  # session id, request id, sequence, length
_IDS_AND_LENGTH = struct.Struct(">ii4xI")  # envelope bytes 4-19, the sequence skipped
MIN_MESSAGE = HEADER_SIZE + 4
STOP_GRACE = 5.0  # seconds connections get to finish their request when the node stops
MAX_UDP_IN_FLIGHT = 1000  # datagrams being answered at once; more are answered "busy"


def _opcode_of(data: bytes) -> int:
    return struct.unpack_from(">i", data)[0] if len(data) >= 4 else 0


def protocol_error(opcode: int, message: str) -> Message:
    return reply(Message(opcode), RC_PROTOCOL_ERROR, bodies.pack_error(message))


class HandleListener:
    """TCP and UDP servers answering through one :class:`Operations`."""

    def __init__(
        self,
        operations: Operations,
        *,
        host: str,
        port: int,
        idle_timeout: float,
        max_message: int,
    ) -> None:
        self._operations = operations
        self.host, self.port = host, port
        self.idle = idle_timeout
        self.max_message = max_message
        self._tcp: asyncio.Server | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self.connections: set[_Connection] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self._datagrams = 0

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            self._tcp = await loop.create_server(
                lambda: _Connection(self, self._operations), self.host, self.port, reuse_port=True
            )
            self._udp, _ = await loop.create_datagram_endpoint(
                lambda: _Datagrams(self), local_addr=(self.host, self.port), reuse_port=True
            )
        except OSError as exc:
            await self.stop()
            raise PortTaken(f"{self.host}:{self.port}: {exc.strerror}") from exc

    async def stop(self) -> None:
        """Stop listening and hang up; requests under way get a moment to finish."""
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
        for connection in list(self.connections):
            connection.close()
        if self.tasks:
            _, pending = await asyncio.wait(self.tasks, timeout=STOP_GRACE)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._tcp is not None:
            await self._tcp.wait_closed()

    def run(self, work: Coroutine[Any, Any, None]) -> None:
        """Run a request that needs to wait (the database, another node) as a task."""
        task = asyncio.get_running_loop().create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # --- UDP ---

    def datagram(self, data: bytes, address: Any) -> None:
        udp = self._udp
        if udp is None:
            return
        # The hot path, as on TCP: the ids and the lengths only, and an answer that fits one
        # datagram sent as it is; read_envelope checks the rest (and makes the error).
        if len(data) >= ENVELOPE_SIZE:
            session_id, request_id, sequence, length = _ANSWER_HEAD.unpack_from(data, 4)
            if (
                sequence == 0
                and length == len(data) - ENVELOPE_SIZE
                and MIN_MESSAGE <= length <= self.max_message
            ):
                ready = self._operations.ready_answer(data[ENVELOPE_SIZE:], ANONYMOUS_SESSION)
                if ready is not None:
                    if len(ready) <= UDP_CHUNK:
                        head = _ANSWER_HEAD.pack(session_id, request_id, 0, len(ready))
                        udp.sendto(VERSION + head + ready, address)
                    else:
                        _send_udp(udp, address, Envelope(session_id, request_id, length), ready)
                    return
        try:
            envelope = read_envelope(data, max_length=self.max_message)
            if envelope.sequence != 0 or envelope.length != len(data) - ENVELOPE_SIZE:
                raise MalformedMessage("a UDP request must be exactly one datagram")
            message = data[ENVELOPE_SIZE:]
            request = read_message(message)
        except MalformedMessage as exc:
            opcode = _opcode_of(data[ENVELOPE_SIZE:])
            _send_udp(udp, address, _blank(data), protocol_error(opcode, exc.message).pack())
            return
        if self._datagrams >= MAX_UDP_IN_FLIGHT:
            busy = reply(request, RC_SERVER_BUSY, bodies.pack_error("busy; try again"))
            _send_udp(udp, address, envelope, busy.pack())
            return
        self._datagrams += 1
        self.run(self._answer_datagram(udp, address, envelope, request))

    async def _answer_datagram(
        self, udp: asyncio.DatagramTransport, address: Any, envelope: Envelope, request: Message
    ) -> None:
        try:
            session = Session(address=str(address[0]))
            response = await self._operations.answer(request, session)
            _send_udp(udp, address, envelope, response.pack())
        finally:
            self._datagrams -= 1


ANONYMOUS_SESSION = Session()


class _Connection(asyncio.Protocol):
    """One TCP connection: requests one at a time, the login kept on :attr:`session`.

    Anonymous resolutions answered from ready bytes are written at once; anything else runs
    as a task while reading pauses (so a client cannot pile up requests, and memory stays
    within one message). ``deadline`` moves on with each whole message: a connection that
    sends nothing, or dribbles, is closed when it passes.
    """

    def __init__(self, listener: HandleListener, operations: Operations) -> None:
        self._listener = listener
        self._operations = operations
        self._buffer = bytearray()
        self.session = Session()
        self._busy = False
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._deadline = self._loop.time() + listener.idle
        self._timer = self._loop.call_at(self._deadline, self._check_idle)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        peer = self._transport.get_extra_info("peername")
        self.session.address = str(peer[0]) if peer else None
        self._listener.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._listener.connections.discard(self)
        self._timer.cancel()
        self._transport = None

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if not self._busy:
            self._take_requests()

    def _check_idle(self) -> None:
        if self._transport is None:
            return
        now = self._loop.time()
        if self._busy:  # a request waiting on the database is not the client's idleness
            self._deadline = max(self._deadline, now + self._listener.idle)
        elif now >= self._deadline:
            self._transport.close()
            return
        self._timer = self._loop.call_at(self._deadline, self._check_idle)

    def _take_requests(self) -> None:
        transport, buffer = self._transport, self._buffer
        operations, session, limit = self._operations, self.session, self._listener.max_message
        while transport is not None and len(buffer) >= ENVELOPE_SIZE:
            # The hot path reads the ids and the length only; read_envelope checks the rest
            # (and makes the error) when the length is out of bounds.
            session_id, request_id, length = _IDS_AND_LENGTH.unpack_from(buffer, 4)
            if not MIN_MESSAGE <= length <= limit:
                self._refuse(transport, buffer)
                return
            end = ENVELOPE_SIZE + length
            if len(buffer) < end:
                return
            message = bytes(buffer[ENVELOPE_SIZE:end])
            del buffer[:end]
            self._deadline = self._loop.time() + self._listener.idle
            ready = operations.ready_answer(message, session)
            if ready is not None:
                head = _ANSWER_HEAD.pack(session_id, request_id, 0, len(ready))
                transport.write(VERSION + head + ready)
                continue
            self._busy = True
            transport.pause_reading()
            envelope = Envelope(session_id, request_id, length)
            self._listener.run(self._answer(envelope, message))
            return

    def _refuse(self, transport: asyncio.Transport, buffer: bytearray) -> None:
        """An envelope that cannot be one: the framing is lost, so say why and hang up."""
        head = bytes(buffer[:ENVELOPE_SIZE])
        try:
            read_envelope(head, max_length=self._listener.max_message)
            problem = "the envelope is not valid"
        except MalformedMessage as exc:
            problem = exc.message
        _write(transport, _blank(head), protocol_error(0, problem).pack())
        transport.close()
        buffer.clear()

    async def _answer(self, envelope: Envelope, message: bytes) -> None:
        self.session.session_id = envelope.session_id
        try:
            request = read_message(message)
        except MalformedMessage as exc:
            response = protocol_error(_opcode_of(message), exc.message)
        else:
            response = await self._operations.answer(request, self.session)
        transport = self._transport
        if transport is None:
            return  # the client went away meanwhile
        # The session id may be new: a key login's challenge names the one to answer under.
        _write(transport, replace(envelope, session_id=self.session.session_id), response.pack())
        self._busy = False
        self._deadline = self._loop.time() + self._listener.idle
        transport.resume_reading()
        self._take_requests()


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, listener: HandleListener) -> None:
        self._listener = listener

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self._listener.datagram(data, addr)


def _blank(head: bytes) -> Envelope:
    """An envelope for answering bytes that were not a valid one: their ids when present."""
    session, request = struct.unpack_from(">ii", head, 4) if len(head) >= 12 else (0, 0)
    return Envelope(session, request, 0)


def _write(transport: asyncio.Transport, envelope: Envelope, message: bytes) -> None:
    """Envelope and message in one write (the SDK mis-reads an envelope split in two)."""
    head = _ANSWER_HEAD.pack(envelope.session_id, envelope.request_id, 0, len(message))
    transport.write(VERSION + head + message)


def _send_udp(
    udp: asyncio.DatagramTransport, address: Any, envelope: Envelope, message: bytes
) -> None:
    for datagram in udp_datagrams(envelope.session_id, envelope.request_id, message):
        udp.sendto(datagram, address)


@asynccontextmanager
async def listening(operations: Operations, **options: Any) -> AsyncIterator[HandleListener]:
    """A started :class:`HandleListener`, stopped when the block ends."""
    listener = HandleListener(operations, **options)
    await listener.start()
    try:
        yield listener
    finally:
        await listener.stop()
