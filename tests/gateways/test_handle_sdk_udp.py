"""The node answers the datagrams the CAICT ID-SDK 2.0.3 sent over its UDP channel
(tests/fixtures/handle/sdk-2.0.3-udp-session.json) as the SDK saw them answered: reads work
anonymously; a login over UDP holds for its own datagram only, so a write after it is refused
(408) and a key login's challenge answer, in a new datagram, finds no challenge (405)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from resolver.handle_protocol.message import (
    ENVELOPE_SIZE,
    FLAG_CONTINUOUS,
    Message,
    read_envelope,
    read_message,
)
from tests.conftest import bearer, create_enterprise
from tests.gateways.handle_node import HOST, NativeNode

CAPTURE = (
    Path(__file__).resolve().parent.parent / "fixtures" / "handle" / "sdk-2.0.3-udp-session.json"
)


class _Answers(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.received.put_nowait(data)


async def datagram_exchange(port: int, request: bytes) -> Message:
    """Send the SDK's datagram as it was; the answer (one datagram here) for its request id."""
    loop = asyncio.get_running_loop()
    transport, answers = await loop.create_datagram_endpoint(_Answers, remote_addr=(HOST, port))
    try:
        transport.sendto(request)
        data = await asyncio.wait_for(answers.received.get(), 5)
    finally:
        transport.close()
    envelope = read_envelope(data, max_length=1 << 16)
    assert envelope.request_id == int.from_bytes(request[8:12], "big")
    assert envelope.sequence == 0
    assert envelope.length == len(data) - ENVELOPE_SIZE  # small answers fit one datagram
    return read_message(data[ENVELOPE_SIZE:])


async def test_the_sdk_s_udp_datagrams_are_answered_as_it_saw_them(node: NativeNode) -> None:
    captured = json.loads(CAPTURE.read_text())
    dairy = await create_enterprise(node.http)
    assert dairy["prefix"] == captured["enterprise_prefix"]
    record = captured["record"]
    put = await node.http.put(
        f"/api/handles/{record['handle']}", json=record["values"], headers=bearer(dairy)
    )
    assert put.status_code == 201, put.text
    secret = dairy["secret"].encode()
    assert len(secret) == captured["masked_secret_length"]
    seen = {}
    for step in captured["steps"]:
        request = bytes.fromhex(step["request"]).replace(b"x" * len(secret), secret)
        answer = await datagram_exchange(node.port, request)
        assert (step["step"], answer.response_code) == (step["step"], step["sdk_saw_response_code"])
        assert answer.opcode == step["node_answered_opcode"]
        assert answer.expiration > time.time()
        assert not answer.flags & FLAG_CONTINUOUS
        seen[step["step"]] = answer
    assert b"https://m.example.com/1" in seen["resolve-by-type"].body  # URL asks for URL.mobile
    assert b"ops@example.com" not in seen["resolve-by-type"].body
    assert b"ops@example.com" in seen["resolve-by-index"].body
    assert (await node.http.get("/api/handles/88.999.1/UDP-1")).status_code == 404
