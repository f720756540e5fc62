"""Enterprise public keys (``/api/v1/enterprises/{prefix}/public-keys``) and the key login
(2001, challenge, 200) they allow on the Handle protocol."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from resolver.handle_protocol import bodies
from resolver.handle_protocol.client import PrivateKey, request_message
from resolver.handle_protocol.message import (
    OC_CHALLENGE_RESPONSE,
    OC_LOGIN_ID_SYSTEM,
    RC_AUTHEN_TIMEOUT,
    RC_AUTHENTICATION_FAILED,
    RC_LOGIN_FIRST,
    RC_SUCCESS,
)
from resolver.values import HandleValue
from tests.conftest import OPERATOR, bearer, create_enterprise
from tests.gateways.handle_node import NativeNode


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


async def publish(node: NativeNode, enterprise: dict[str, Any], key: PrivateKey) -> int:
    answer = await node.http.post(
        f"/api/v1/enterprises/{enterprise['prefix']}/public-keys",
        json={"publicKey": pem(key)},
        headers=bearer(enterprise),
    )
    assert answer.status_code == 201, answer.text
    return int(answer.json()["index"])


def value(index: int) -> list[HandleValue]:
    return [HandleValue(index, "URL", "string", "https://example.com/key")]


async def test_keys_are_published_listed_and_revoked(
    node: NativeNode, rsa_key: rsa.RSAPrivateKey
) -> None:
    dairy = await create_enterprise(node.http)
    keys = f"/api/v1/enterprises/{dairy['prefix']}/public-keys"
    assert await publish(node, dairy, rsa_key) == 301
    second = ec.generate_private_key(ec.SECP256R1())
    assert await publish(node, dairy, second) == 302
    listed = (await node.http.get(keys, headers=bearer(dairy))).json()
    assert [(k["index"], k["algorithm"]) for k in listed] == [(301, "RSA"), (302, "EC")]
    admin = (await node.http.get(f"/api/handles/{dairy['prefix']}/ADMIN")).json()
    assert [v["index"] for v in admin["values"] if v["type"] == "HS_PUBKEY"] == [301, 302]

    assert (await node.http.delete(f"{keys}/302", headers=OPERATOR)).status_code == 204
    assert (await node.http.delete(f"{keys}/302", headers=OPERATOR)).status_code == 404
    listed = (await node.http.get(keys, headers=bearer(dairy))).json()
    assert [k["index"] for k in listed] == [301]


async def test_only_the_owner_or_the_operator_publishes_and_only_keys(
    node: NativeNode, rsa_key: rsa.RSAPrivateKey
) -> None:
    dairy = await create_enterprise(node.http)
    other = await create_enterprise(node.http, "Other Co")
    keys = f"/api/v1/enterprises/{dairy['prefix']}/public-keys"
    body = {"publicKey": pem(rsa_key)}
    assert (await node.http.post(keys, json=body)).status_code == 401
    assert (await node.http.post(keys, json=body, headers=bearer(other))).status_code == 403
    assert (await node.http.post(keys, json=body, headers=OPERATOR)).status_code == 201
    not_a_key = await node.http.post(keys, json={"publicKey": "hello"}, headers=bearer(dairy))
    assert not_a_key.status_code == 400
    assert "PEM" in not_a_key.json()["detail"]


async def test_a_key_login_lets_the_connection_write_as_the_enterprise(
    node: NativeNode, rsa_key: rsa.RSAPrivateKey
) -> None:
    dairy = await create_enterprise(node.http)
    index = await publish(node, dairy, rsa_key)
    handle = f"{dairy['prefix']}/KEYED-1"
    async with node.connection() as client:
        answer = await client.key_login(f"{dairy['prefix']}/ADMIN", index, rsa_key)
        assert answer.code == RC_SUCCESS, answer.error
        assert answer.message.opcode == OC_LOGIN_ID_SYSTEM
        assert (await client.create(handle, value(1))).code == RC_SUCCESS
    history = await node.http.get(f"/api/v1/identifiers/{handle}/history")
    assert history.json()["changes"][0]["actor"] == f"enterprise:{dairy['prefix']}"


async def test_an_ec_key_logs_in_with_ecdsa(node: NativeNode) -> None:
    dairy = await create_enterprise(node.http)
    key = ec.generate_private_key(ec.SECP256R1())
    index = await publish(node, dairy, key)
    async with node.connection() as client:
        answer = await client.key_login(f"{dairy['prefix']}/ADMIN", index, key)
    assert answer.code == RC_SUCCESS, answer.error


async def test_a_wrong_or_revoked_key_does_not_log_in(
    node: NativeNode, rsa_key: rsa.RSAPrivateKey
) -> None:
    dairy = await create_enterprise(node.http)
    index = await publish(node, dairy, rsa_key)
    admin = f"{dairy['prefix']}/ADMIN"
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    async with node.connection() as client:
        refused = await client.key_login(admin, index, stranger)
        assert refused.code == RC_AUTHENTICATION_FAILED
        assert refused.message.opcode == OC_LOGIN_ID_SYSTEM
        assert (await client.create(f"{dairy['prefix']}/X", value(1))).code == RC_LOGIN_FIRST
    revoked = await node.http.delete(
        f"/api/v1/enterprises/{dairy['prefix']}/public-keys/{index}", headers=bearer(dairy)
    )
    assert revoked.status_code == 204
    async with node.connection() as client:
        assert (await client.key_login(admin, index, rsa_key)).code == RC_AUTHENTICATION_FAILED


async def test_an_answer_without_a_challenge_is_refused(node: NativeNode) -> None:
    dairy = await create_enterprise(node.http)
    answer = bodies.ChallengeAnswer(f"{dairy['prefix']}/ADMIN", 301, "SHA-256", b"\0" * 256)
    async with node.connection() as client:
        refused = await client.send(request_message(OC_CHALLENGE_RESPONSE, answer.pack()))
    assert refused.code == RC_AUTHEN_TIMEOUT
    assert refused.message.opcode == OC_LOGIN_ID_SYSTEM
