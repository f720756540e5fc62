"""The node answers the exact bytes the CAICT ID-SDK 2.0.3 sent (tests/fixtures/handle) as
the SDK needs: on one TCP connection, with the codes, opcodes and expirations it accepts."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from pathlib import Path
from typing import Any

from app.registry.access import public_keys
from resolver.handle_protocol import bodies
from resolver.handle_protocol.message import (
    ENVELOPE_SIZE,
    FLAG_CONTINUOUS,
    FLAG_REQUEST_DIGEST,
    Message,
    read_envelope,
    read_message,
)
from tests.api.factories import history
from tests.conftest import bearer, create_enterprise
from tests.gateways.handle_node import HOST, NativeNode

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "handle"


def session(name: str) -> dict[str, Any]:
    return dict(json.loads((FIXTURES / name).read_text()))


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


async def test_the_sdk_s_key_login_is_challenged_as_it_expects_and_its_signature_verifies(
    node: NativeNode,
) -> None:
    captured = session("sdk-2.0.3-key-session.json")
    steps = {step["step"]: step for step in captured["steps"]}
    dairy = await create_enterprise(node.http)
    published = await node.http.post(
        f"/api/v1/enterprises/{dairy['prefix']}/public-keys",
        json={"publicKey": captured["public_key"]},
        headers=bearer(dairy),
    )
    assert published.json()["index"] == 301
    login = bytes.fromhex(steps["key-login"]["request"])
    reader, writer = await asyncio.open_connection(HOST, node.port)
    try:
        session_id, challenge = await exchange(reader, writer, login)
    finally:
        writer.close()
    # What the SDK checks before it signs: opcode 2001, code 402, RD set, the digest of
    # its own request's header and body first, then the nonce; a session id to answer under.
    assert (challenge.opcode, challenge.response_code) == (2001, 402)
    assert challenge.flags & FLAG_REQUEST_DIGEST
    request = read_message(login[ENVELOPE_SIZE:])
    own_digest = hashlib.sha256(login[ENVELOPE_SIZE : ENVELOPE_SIZE + 24 + len(request.body)])
    assert challenge.body[:33] == b"\x03" + own_digest.digest()
    assert len(bodies.read_challenge(challenge.body[33:])) == 16
    assert session_id != 0

    # The SDK's answer to the challenge it got when captured verifies with the published key.
    answer = bodies.ChallengeAnswer.read(
        read_message(bytes.fromhex(steps["challenge-answer"]["request"])[ENVELOPE_SIZE:]).body
    )
    assert (answer.auth_type, answer.handle, answer.index) == ("HS_PUBKEY", "88.999.1/ADMIN", 301)
    assert answer.hash_id == "SHA-256"
    key = public_keys.parse_pem(captured["public_key"])
    then = captured["challenge"]
    signed = bytes.fromhex(then["nonce"]) + bytes.fromhex(then["digest"])
    assert public_keys.verifies(key, answer.hash_id, answer.signature, signed)
    assert not public_keys.verifies(key, answer.hash_id, answer.signature, b"\0" * 16 + signed[16:])
    assert captured["challenge"]["digest"] == own_digest.hexdigest()


async def test_the_sdk_s_challenge_answer_replayed_on_another_connection_is_refused(
    node: NativeNode,
) -> None:
    captured = session("sdk-2.0.3-key-session.json")
    steps = {step["step"]: step for step in captured["steps"]}
    await create_enterprise(node.http)
    reader, writer = await asyncio.open_connection(HOST, node.port)
    try:
        await exchange(reader, writer, bytes.fromhex(steps["key-login"]["request"]))
        _, refused = await exchange(
            reader, writer, bytes.fromhex(steps["challenge-answer"]["request"])
        )
        _, create = await exchange(reader, writer, bytes.fromhex(steps["create"]["request"]))
    finally:
        writer.close()
    assert (refused.opcode, refused.response_code) == (2001, 405)  # not this challenge
    assert create.response_code == 408  # still not logged in


async def test_the_sdk_s_dsa_key_login_signs_with_sha1_and_the_node_verifies_it(
    node: NativeNode,
) -> None:
    """The 2.0.3 SDK signs a DSA challenge with SHA1withDSA (Java allows SHA-1 only with a
    160-bit q, i.e. DSA-1024 keys); the node checks that signature as it does RSA's."""
    captured = session("sdk-2.0.3-dsa-key-session.json")
    steps = {step["step"]: step for step in captured["steps"]}
    assert steps["challenge-answer"]["sdk_saw_response_code"] == 1
    dairy = await create_enterprise(node.http)
    published = await node.http.post(
        f"/api/v1/enterprises/{dairy['prefix']}/public-keys",
        json={"publicKey": captured["public_key"]},
        headers=bearer(dairy),
    )
    assert published.status_code == 201, published.text
    assert published.json()["algorithm"] == "DSA"
    answer = bodies.ChallengeAnswer.read(
        read_message(bytes.fromhex(steps["challenge-answer"]["request"])[ENVELOPE_SIZE:]).body
    )
    assert (answer.handle, answer.index, answer.hash_id) == ("88.999.1/ADMIN", 302, "SHA1")
    key = public_keys.parse_pem(captured["public_key"])
    then = captured["challenge"]
    signed = bytes.fromhex(then["nonce"]) + bytes.fromhex(then["digest"])
    assert public_keys.verifies(key, answer.hash_id, answer.signature, signed)
    assert not public_keys.verifies(key, answer.hash_id, answer.signature, b"\0" * 16 + signed[16:])
    login = bytes.fromhex(steps["key-login"]["request"])
    own = read_message(login[ENVELOPE_SIZE:])
    own_digest = hashlib.sha256(login[ENVELOPE_SIZE : ENVELOPE_SIZE + 24 + len(own.body)])
    assert then["digest"] == own_digest.hexdigest()
