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
import contextlib
import logging
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

from gateways.handle.operations import Operations, Session, reply
from resolver.handle_protocol import bodies
from resolver.handle_protocol.message import (
    ENVELOPE_SIZE,
    RC_PROTOCOL_ERROR,
    RC_SERVER_BUSY,
    Envelope,
    MalformedMessage,
    Message,
    frame,
    read_envelope,
    read_message,
    udp_datagrams,
)

log = logging.getLogger("gateways.handle")
STOP_GRACE = 5.0  # seconds connections get to finish their request when the node stops
MAX_UDP_IN_FLIGHT = 1000  # datagrams being answered at once; more are answered "busy"


class PortTaken(Exception):
    """The Handle port cannot be listened on (another program holds it)."""


def check_free(host: str, port: int) -> None:
    """Raise :class:`PortTaken` when another program holds ``port`` (TCP or UDP).

    Workers share the port through SO_REUSEPORT, which would also let a second node of the
    same user share it silently; ``idnode serve`` asks this once, before starting workers.
    """
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, kind) as probe:
            if kind == socket.SOCK_STREAM:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as exc:
                raise PortTaken(f"{host}:{port}: {exc.strerror}") from exc


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
        self._idle = idle_timeout
        self._max = max_message
        self._tcp: asyncio.Server | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._connections: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}
        self._datagrams: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            self._tcp = await asyncio.start_server(
                self._connection, self.host, self.port, reuse_port=True
            )
            self._udp, _ = await loop.create_datagram_endpoint(
                lambda: _Datagrams(self), local_addr=(self.host, self.port), reuse_port=True
            )
        except OSError as exc:
            await self.stop()
            raise PortTaken(f"{self.host}:{self.port}: {exc.strerror}") from exc

    async def stop(self) -> None:
        """Stop listening and hang up: each connection ends its current request (closing
        its socket ends the wait for the next one); datagram answers are abandoned."""
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
        for writer in self._connections.values():
            writer.close()
        for task in self._datagrams:
            task.cancel()
        tasks = [*self._connections, *self._datagrams]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=STOP_GRACE)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._tcp is not None:
            await self._tcp.wait_closed()

    # --- TCP ---

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        try:
            await self._serve(reader, writer, Session())
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            pass  # the client went away or went quiet
        finally:
            self._connections.pop(task, None)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, session: Session
    ) -> None:
        while True:
            head = await asyncio.wait_for(reader.readexactly(ENVELOPE_SIZE), self._idle)
            try:
                envelope = read_envelope(head, max_length=self._max)
            except MalformedMessage as exc:
                # The framing is lost: say why and hang up.
                _send(writer, _blank(head), protocol_error(0, exc.message))
                await writer.drain()
                return
            data = await asyncio.wait_for(reader.readexactly(envelope.length), self._idle)
            session.session_id = envelope.session_id
            try:
                request = read_message(data)
            except MalformedMessage as exc:
                response = protocol_error(_opcode_of(data), exc.message)
            else:
                response = await self._operations.answer(request, session)
            # The session id may be new: a key login's challenge names the one to answer under.
            _send(writer, replace(envelope, session_id=session.session_id), response)
            await writer.drain()

    # --- UDP ---

    def datagram(self, data: bytes, address: Any) -> None:
        udp = self._udp
        if udp is None:
            return
        try:
            envelope = read_envelope(data, max_length=self._max)
            if envelope.sequence != 0 or envelope.length != len(data) - ENVELOPE_SIZE:
                raise MalformedMessage("a UDP request must be exactly one datagram")
            request = read_message(data[ENVELOPE_SIZE:])
        except MalformedMessage as exc:
            envelope = _blank(data)
            opcode = _opcode_of(data[ENVELOPE_SIZE:])
            _send_udp(udp, address, envelope, protocol_error(opcode, exc.message))
            return
        if len(self._datagrams) >= MAX_UDP_IN_FLIGHT:
            busy = reply(request, RC_SERVER_BUSY, bodies.pack_error("busy; try again"))
            _send_udp(udp, address, envelope, busy)
            return
        task = asyncio.create_task(self._answer_datagram(udp, address, envelope, request))
        self._datagrams.add(task)
        task.add_done_callback(self._datagrams.discard)

    async def _answer_datagram(
        self, udp: asyncio.DatagramTransport, address: Any, envelope: Envelope, request: Message
    ) -> None:
        response = await self._operations.answer(request, Session())
        _send_udp(udp, address, envelope, response)


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, listener: HandleListener) -> None:
        self._listener = listener

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self._listener.datagram(data, addr)


def _blank(head: bytes) -> Envelope:
    """An envelope for answering bytes that were not a valid one: their ids when present."""
    session, request = struct.unpack_from(">ii", head, 4) if len(head) >= 12 else (0, 0)
    return Envelope(session, request, 0)


def _send(writer: asyncio.StreamWriter, envelope: Envelope, response: Message) -> None:
    packed = response.pack()
    answer = Envelope(envelope.session_id, envelope.request_id, len(packed))
    writer.write(frame(answer, packed))


def _send_udp(
    udp: asyncio.DatagramTransport, address: Any, envelope: Envelope, response: Message
) -> None:
    for datagram in udp_datagrams(envelope.session_id, envelope.request_id, response.pack()):
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
