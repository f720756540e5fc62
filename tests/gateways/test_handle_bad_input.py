"""Bad input on the Handle port: each gets a protocol error or is closed after the idle
timeout, memory stays bounded, and other clients keep being served."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator

import pytest

from app.settings import Settings
from resolver.handle_protocol.bodies import Query
from resolver.handle_protocol.client import HandleClient, request_message
from resolver.handle_protocol.message import (
    ENVELOPE_SIZE,
    OC_RESOLUTION,
    RC_OPERATION_NOT_SUPPORTED,
    RC_PROTOCOL_ERROR,
    RC_SUCCESS,
    Envelope,
    Message,
    read_envelope,
    read_message,
)
from tests.gateways.handle_node import HOST, NativeNode, native_node

IDLE = 2.0  # short for the tests, long enough for a loaded machine between requests
MAX_MESSAGE = 4096
ADMIN = "88.999/ADMIN"  # not there: answered 100, which is an answer all the same


@pytest.fixture
async def node(settings: Settings) -> AsyncIterator[NativeNode]:
    async with native_node(
        settings, handle_idle_timeout=IDLE, handle_max_message=MAX_MESSAGE
    ) as running:
        yield running


async def opened(node: NativeNode) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(HOST, node.port)


async def answer_then_closed(reader: asyncio.StreamReader) -> Message:
    head = await asyncio.wait_for(reader.readexactly(ENVELOPE_SIZE), 5)
    envelope = read_envelope(head, max_length=1 << 20)
    message = read_message(await reader.readexactly(envelope.length))
    assert await asyncio.wait_for(reader.read(), 5) == b""  # the node hung up
    return message


async def closed(reader: asyncio.StreamReader) -> bool:
    """True when the node closes the connection (bounded: a few idle timeouts)."""
    try:
        return await asyncio.wait_for(reader.read(), IDLE * 10) == b""
    except ConnectionResetError:
        return True


async def still_serves(node: NativeNode) -> None:
    async with node.connection() as client:
        answer = await client.resolve(ADMIN)
    assert answer.code in {RC_SUCCESS, 100}


def frame(message: bytes, *, length: int | None = None) -> bytes:
    size = len(message) if length is None else length
    return Envelope(0, 41, size).pack() + message


async def test_garbage_gets_a_protocol_error_and_the_connection_is_closed(
    node: NativeNode,
) -> None:
    reader, writer = await opened(node)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = await answer_then_closed(reader)
    assert answer.response_code == RC_PROTOCOL_ERROR
    writer.close()
    await still_serves(node)


async def test_an_oversized_envelope_is_refused_before_its_body_is_read(
    node: NativeNode,
) -> None:
    reader, writer = await opened(node)
    writer.write(frame(b"", length=MAX_MESSAGE + 1))  # and no body at all
    answer = await answer_then_closed(reader)
    assert answer.response_code == RC_PROTOCOL_ERROR
    assert b"exceeds the limit" in answer.body
    writer.close()


async def test_a_body_length_that_lies_gets_a_protocol_error_and_the_connection_lives(
    node: NativeNode,
) -> None:
    packed = bytearray(request_message(OC_RESOLUTION, Query(ADMIN).pack()).pack())
    struct.pack_into(">I", packed, 20, 3000)
    async with node.connection() as client:
        reader, writer = client._reader, client._writer
        writer.write(frame(bytes(packed)))
        head = await asyncio.wait_for(reader.readexactly(ENVELOPE_SIZE), 5)
        answer = read_message(
            await reader.readexactly(read_envelope(head, max_length=1 << 20).length)
        )
        assert answer.response_code == RC_PROTOCOL_ERROR
        assert answer.opcode == OC_RESOLUTION
        assert (await client.resolve(ADMIN)).code in {RC_SUCCESS, 100}  # same connection


async def test_an_unknown_opcode_is_answered_not_supported_with_its_opcode(
    node: NativeNode,
) -> None:
    async with node.connection() as client:
        answer = await client.request(4242, b"")
        assert answer.code == RC_OPERATION_NOT_SUPPORTED
        assert answer.message.opcode == 4242
        assert "4242" in answer.error
        assert (await client.resolve(ADMIN)).code in {RC_SUCCESS, 100}


async def test_a_truncated_envelope_then_silence_is_closed_after_the_idle_timeout(
    node: NativeNode,
) -> None:
    reader, writer = await opened(node)
    writer.write(b"\x02\x0a\x02")
    assert await closed(reader)
    writer.close()


async def test_a_client_that_sends_nothing_is_closed(node: NativeNode) -> None:
    reader, writer = await opened(node)
    assert await closed(reader)
    writer.close()


async def test_a_client_sending_one_byte_at_a_time_is_closed_and_others_are_served(
    node: NativeNode,
) -> None:
    request = frame(request_message(OC_RESOLUTION, Query(ADMIN).pack()).pack())
    reader, writer = await opened(node)

    async def trickle() -> None:
        for byte in request:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(IDLE / 4)

    dribbling = asyncio.create_task(trickle())
    try:
        await still_serves(node)
        assert await closed(reader)
    finally:
        dribbling.cancel()
        writer.close()


async def test_a_thousand_idle_connections_do_not_stop_others_and_are_closed(
    node: NativeNode,
) -> None:
    idle = [await opened(node) for _ in range(1000)]
    try:
        await still_serves(node)
        results = await asyncio.gather(*(closed(reader) for reader, _ in idle))
        assert all(results)
    finally:
        for _, writer in idle:
            writer.close()
    await still_serves(node)


async def test_udp_garbage_and_multi_datagram_requests_get_a_protocol_error(
    node: NativeNode,
) -> None:
    request = request_message(OC_RESOLUTION, Query(ADMIN).pack()).pack()
    lying = Envelope(0, 43, len(request) + 500).pack() + request  # says more than it holds
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.setblocking(False)
        for datagram in (b"\xff" * 40, lying):
            await loop.sock_sendto(udp, datagram, (HOST, node.port))
            answer, _ = await asyncio.wait_for(loop.sock_recvfrom(udp, 512), 5)
            message = read_message(answer[ENVELOPE_SIZE:])
            assert message.response_code == RC_PROTOCOL_ERROR
    await still_serves(node)


async def test_memory_per_connection_is_bounded_by_the_message_limit(node: NativeNode) -> None:
    # A client that keeps sending one huge "message" is refused at its envelope; what it
    # sends after that is never buffered (the connection is gone).
    reader, writer = await opened(node)
    writer.write(frame(b"", length=50 * 1024 * 1024))
    answer = await answer_then_closed(reader)
    assert answer.response_code == RC_PROTOCOL_ERROR
    writer.close()
    client = await HandleClient.connect(HOST, node.port)
    await client.close()
