"""Password login (opcode 2000) with user ``TOKEN`` and a bearer token as the password: the
connection is then whoever that token is over HTTP — a reader token reads what it was
granted and writes nothing, an enterprise token is that enterprise, the operator token the
operator."""

from __future__ import annotations

from typing import Any

from app.settings import Settings
from resolver.handle_protocol.client import Answer, HandleClient
from resolver.handle_protocol.message import (
    RC_AUTHENTICATION_FAILED,
    RC_INSUFFICIENT_PERMISSIONS,
    RC_SERVER_BUSY,
    RC_SUCCESS,
)
from resolver.values import HandleValue
from tests.api.factories import grant, reader
from tests.conftest import OPERATOR_TOKEN, bearer, create_enterprise, url_value
from tests.gateways.handle_node import NativeNode, native_node

RESTRICTED = {"index": 4, "type": "COST", "data": "12.50", "permissions": "1100"}


async def record(node: NativeNode, owner: dict[str, Any], suffix: str) -> str:
    handle = f"{owner['prefix']}/{suffix}"
    put = await node.http.put(
        f"/api/handles/{handle}",
        json=[url_value("https://example.com/t"), RESTRICTED],
        headers=bearer(owner),
    )
    assert put.status_code == 201, put.text
    return handle


def indexes(answer: Answer) -> set[int]:
    assert answer.code == RC_SUCCESS, (answer.code, answer.error)
    return {v["index"] for v in answer.values()[1]}


async def token_login(client: HandleClient, token: str) -> Answer:
    return await client.login("TOKEN", token)


async def test_a_reader_token_reads_what_it_was_granted_and_writes_nothing(
    node: NativeNode,
) -> None:
    dairy = await create_enterprise(node.http)
    milk = await record(node, dairy, "MILK-T1")
    cheese = await record(node, dairy, "CHEESE-T1")
    issued = await reader(node.http, dairy, "Market regulator")
    await grant(node.http, dairy, issued["id"], milk)
    async with node.connection() as client:
        assert 4 not in indexes(await client.resolve(milk))  # anonymous so far
        assert (await token_login(client, issued["token"])).code == RC_SUCCESS
        assert 4 in indexes(await client.resolve(milk))
        assert 4 not in indexes(await client.resolve(cheese))  # not granted
        write = await client.create(
            f"{dairy['prefix']}/BY-READER", [HandleValue(1, "URL", "string", "https://x.example")]
        )
        assert write.code == RC_INSUFFICIENT_PERMISSIONS
        assert "reader token may only read" in write.error
    assert (await node.http.get(f"/api/handles/{dairy['prefix']}/BY-READER")).status_code == 404


async def test_enterprise_and_operator_tokens_are_who_they_are_over_http(
    node: NativeNode,
) -> None:
    dairy = await create_enterprise(node.http)
    async with node.connection() as as_dairy, node.connection() as as_operator:
        assert (await token_login(as_dairy, dairy["token"])).code == RC_SUCCESS
        assert (await token_login(as_operator, OPERATOR_TOKEN)).code == RC_SUCCESS
        value = [HandleValue(1, "URL", "string", "https://x.example")]
        assert (await as_dairy.create(f"{dairy['prefix']}/BY-TOKEN", value)).code == RC_SUCCESS
        assert (await as_operator.create(f"{dairy['prefix']}/BY-OP", value)).code == RC_SUCCESS
    changes = await node.http.get(
        f"/api/v1/identifiers/{dairy['prefix']}/BY-OP/history", headers=bearer(dairy)
    )
    assert [c["actor"] for c in changes.json()["changes"]] == ["operator"]


async def test_a_wrong_or_revoked_token_does_not_log_in(node: NativeNode) -> None:
    dairy = await create_enterprise(node.http)
    issued = await reader(node.http, dairy, "Customer")
    revoked = await node.http.delete(f"/api/v1/reader-tokens/{issued['id']}", headers=bearer(dairy))
    assert revoked.status_code in {200, 204}, revoked.text
    async with node.connection() as client:
        for token in ("not-a-token", issued["token"], ""):
            refused = await token_login(client, token)
            assert refused.code == RC_AUTHENTICATION_FAILED, token
            assert refused.error
        # still anonymous
        assert (
            await client.create(
                f"{dairy['prefix']}/NOPE", [HandleValue(1, "URL", "string", "https://x.example")]
            )
        ).code != RC_SUCCESS


async def test_failed_native_logins_are_throttled_as_over_http(settings: Settings) -> None:
    async with native_node(settings, auth_failures_per_credential=3) as node:
        dairy = await create_enterprise(node.http)
        user = f"300:{dairy['prefix']}/ADMIN"
        async with node.connection() as client:
            for _ in range(3):
                assert (await client.login(user, "wrong")).code == RC_AUTHENTICATION_FAILED
            throttled = await client.login(user, dairy["secret"])  # right, but refused unchecked
            assert throttled.code == RC_SERVER_BUSY
            assert "too many failed attempts" in throttled.error
            assert (await token_login(client, dairy["token"])).code == RC_SUCCESS  # another one
