"""The node answers the exact bytes the CAICT ID-SDK 2.0.3 sent (tests/fixtures/handle) as
the SDK needs: on one TCP connection, with the codes, opcodes and expirations it accepts."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from app.settings import Settings
from resolver.handle_protocol.message import (
    ENVELOPE_SIZE,
    FLAG_CONTINUOUS,
    Message,
    read_envelope,
    read_message,
)
from tests.api.factories import history
from tests.conftest import create_enterprise
from tests.gateways.handle_node import HOST, NativeNode, native_node

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "handle"


def session(name: str) -> dict[str, Any]:
    return dict(json.loads((FIXTURES / name).read_text()))


@pytest.fixture
async def node(settings: Settings) -> AsyncIterator[NativeNode]:
    async with native_node(settings) as running:
        yield running


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, Message]:
    writer.write(request)
    await writer.drain()
    head = await asyncio.wait_for(reader.readexactly(ENVELOPE_SIZE), 10)
    envelope = read_envelope(head, max_length=1 << 20)
    sent_id = int.from_bytes(request[8:12], "big")
    assert envelope.request_id == sent_id
    return envelope.session_id, read_message(await reader.readexactly(envelope.length))


async def test_the_sdk_s_password_session_is_answered_as_it_expects(node: NativeNode) -> None:
    captured = session("sdk-2.0.3-password-session.json")
    dairy = await create_enterprise(node.http)
    assert dairy["prefix"] == captured["enterprise_prefix"]
    secret = dairy["secret"].encode()
    assert len(secret) == captured["masked_secret_length"]
    reader, writer = await asyncio.open_connection(HOST, node.port)
    try:
        for step in captured["steps"]:
            request = bytes.fromhex(step["request"])
            request = request.replace(b"x" * len(secret), secret)
            _, answer = await exchange(reader, writer, request)
            assert (step["step"], answer.response_code) == (
                step["step"],
                step["sdk_saw_response_code"],
            )
            assert answer.opcode == step["opcode"]
            assert answer.expiration > time.time()
            assert not answer.flags & FLAG_CONTINUOUS
    finally:
        writer.close()
    changes = (await history(node.http, f"{dairy['prefix']}/SDK-1"))["changes"]
    assert [c["operation"] for c in changes] == ["create", "update", "update", "update", "delete"]
    assert {c["actor"] for c in changes} == {f"enterprise:{dairy['prefix']}"}
