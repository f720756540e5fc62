"""The node over the Handle protocol: resolution, site, logins, writes, and the same node over
HTTP (one store, one cache, one set of rules)."""

from __future__ import annotations

import asyncio
from typing import Any

from app.settings import Settings
from resolver.handle_protocol.bodies import Query
from resolver.handle_protocol.client import Answer, HandleClient, request_message, udp_request
from resolver.handle_protocol.message import (
    FLAG_PUBLIC_ONLY,
    OC_RESOLUTION,
    RC_AUTHENTICATION_FAILED,
    RC_HANDLE_ALREADY_EXISTS,
    RC_HANDLE_NOT_FOUND,
    RC_INVALID_VALUE,
    RC_LOGIN_FIRST,
    RC_SUCCESS,
    RC_VALUE_ALREADY_EXISTS,
    RC_VALUES_NOT_FOUND,
)
from resolver.values import HandleValue
from tests.api.factories import grant, history
from tests.conftest import OPERATOR, bearer, create_enterprise, url_value
from tests.gateways.handle_node import HOST, NativeNode, native_node


def url(index: int, text: str, permissions: str = "1110") -> HandleValue:
    return HandleValue(index, "URL", "string", text, permissions=permissions)


def by_index(answer: Answer) -> dict[int, Any]:
    assert answer.code == RC_SUCCESS, (answer.code, answer.error)
    return {v["index"]: v["data"]["value"] for v in answer.values()[1]}


async def registered(node: NativeNode, enterprise: dict[str, Any], suffix: str) -> str:
    handle = f"{enterprise['prefix']}/{suffix}"
    values = [
        url_value("https://example.com/p"),
        {"index": 2, "type": "URL.backup", "data": "https://b.example.com"},
        {"index": 3, "type": "EMAIL", "data": "ops@example.com"},
        {"index": 4, "type": "COST", "data": "12.50", "permissions": "1100"},
    ]
    put = await node.http.put(f"/api/handles/{handle}", json=values, headers=bearer(enterprise))
    assert put.status_code == 201, put.text
    return handle


async def logged_in(client: HandleClient, enterprise: dict[str, Any]) -> None:
    answer = await client.login(f"300:{enterprise['prefix']}/ADMIN", enterprise["secret"])
    assert answer.code == RC_SUCCESS, answer.error


async def test_resolution_filters_by_index_or_type_and_subtypes(node: NativeNode) -> None:
    dairy = await create_enterprise(node.http)
    handle = await registered(node, dairy, "MILK-1")
    async with node.connection() as client:
        everything = by_index(await client.resolve(handle))
        assert set(everything) == {1, 2, 3, 100}  # COST (not public) is left out
        assert set(by_index(await client.resolve(handle, types=["URL"]))) == {1, 2}
        assert set(by_index(await client.resolve(handle, indexes=[3], types=["URL"]))) == {
            1,
            2,
            3,
        }
        # Types match without regard to case (as the Handle.Net server compares them).
        assert set(by_index(await client.resolve(handle, types=["url"]))) == {1, 2}
        assert set(by_index(await client.resolve(handle, types=["Url.BACKUP"]))) == {2}
        assert set(by_index(await client.resolve(handle, types=["URL."]))) == {1, 2}
        nothing = await client.resolve(handle, types=["NOPE"])
        assert nothing.code == RC_VALUES_NOT_FOUND
        missing = await client.resolve(f"{dairy['prefix']}/NO-SUCH")
        assert missing.code == RC_HANDLE_NOT_FOUND
        assert "not found" in missing.error


async def test_one_connection_serves_many_requests_and_answers_expire_later(
    node: NativeNode,
) -> None:
    dairy = await create_enterprise(node.http)
    handle = await registered(node, dairy, "MILK-2")
    async with node.connection() as client:
        for _ in range(20):
            answer = await client.resolve(handle)
            assert answer.code == RC_SUCCESS
            assert answer.message.opcode == OC_RESOLUTION
            assert answer.message.expiration > 0


async def test_get_site_names_the_node_s_tcp_port(node: NativeNode) -> None:
    async with node.connection() as client:
        answer = await client.site()
    assert answer.code == RC_SUCCESS
    assert node.port.to_bytes(4, "big") in answer.body
    assert b"idnode 88.999" in answer.body


async def test_anonymous_udp_resolution_in_one_datagram(node: NativeNode) -> None:
    dairy = await create_enterprise(node.http)
    handle = await registered(node, dairy, "MILK-3")
    request = request_message(OC_RESOLUTION, Query(handle, (), ("EMAIL",)).pack())
    answer = await udp_request(HOST, node.port, request)
    assert by_index(answer) == {3: "ops@example.com"}


async def test_a_large_udp_answer_comes_in_numbered_chunks(node: NativeNode) -> None:
    dairy = await create_enterprise(node.http)
    handle = f"{dairy['prefix']}/BIG"
    values = [url_value(f"https://example.com/{'x' * 200}/{i}", i) for i in range(1, 11)]
    put = await node.http.put(f"/api/handles/{handle}", json=values, headers=bearer(dairy))
    assert put.status_code == 201
    answer = await udp_request(
        HOST, node.port, request_message(OC_RESOLUTION, Query(handle).pack())
    )
    assert len(by_index(answer)) == 11
    assert answer.envelope.length > 492


async def test_password_login_then_writes_show_over_http_with_history(node: NativeNode) -> None:
    dairy = await create_enterprise(node.http)
    handle = f"{dairy['prefix']}/NATIVE-1"
    async with node.connection() as client:
        refused = await client.create(handle, [url(1, "https://a.example.com")])
        assert refused.code == RC_LOGIN_FIRST
        wrong = await client.login(f"{dairy['prefix']}/ADMIN", "not-the-secret")
        assert wrong.code == RC_AUTHENTICATION_FAILED
        await logged_in(client, dairy)

        assert (await client.create(handle, [url(1, "https://a.example.com")])).code == 1
        again = await client.create(handle, [url(1, "https://a.example.com")])
        assert again.code == RC_HANDLE_ALREADY_EXISTS
        seen = (await node.http.get(f"/api/handles/{handle}")).json()
        assert [v["data"]["value"] for v in seen["values"] if v["index"] == 1] == [
            "https://a.example.com"
        ]

        assert (await client.add(handle, [url(2, "https://b.example.com")])).code == 1
        clash = await client.add(handle, [url(2, "https://c.example.com")])
        assert clash.code == RC_VALUE_ALREADY_EXISTS
        assert (await client.modify(handle, [url(2, "https://c.example.com")])).code == 1
        absent = await client.modify(handle, [url(9, "https://z.example.com")])
        assert absent.code == RC_VALUES_NOT_FOUND
        assert by_index(await client.resolve(handle, indexes=[2])) == {2: "https://c.example.com"}

        assert (await client.remove(handle, [1])).code == 1
        assert (await client.remove(handle, [1])).code == RC_VALUES_NOT_FOUND
        assert set(by_index(await client.resolve(handle))) == {2, 100}

        assert (await client.delete(handle)).code == 1
        assert (await client.resolve(handle)).code == RC_HANDLE_NOT_FOUND
    gone = await node.http.get(f"/api/handles/{handle}")
    assert gone.status_code == 404
    changes = (await history(node.http, handle))["changes"]
    assert [c["operation"] for c in changes] == ["create", "update", "update", "update", "delete"]
    assert {c["actor"] for c in changes} == {f"enterprise:{dairy['prefix']}"}


async def test_an_http_write_is_seen_natively_at_once(node: NativeNode) -> None:
    dairy = await create_enterprise(node.http)
    handle = await registered(node, dairy, "MILK-4")
    async with node.connection() as client:
        assert by_index(await client.resolve(handle, indexes=[1])) == {1: "https://example.com/p"}
        put = await node.http.put(
            f"/api/handles/{handle}?index=1",
            json=[url_value("https://example.com/v2")],
            headers=bearer(dairy),
        )
        assert put.status_code == 200
        assert by_index(await client.resolve(handle, indexes=[1])) == {1: "https://example.com/v2"}


async def test_a_logged_in_owner_reads_restricted_values_others_do_not(node: NativeNode) -> None:
    dairy = await create_enterprise(node.http)
    other = await create_enterprise(node.http, "Other Co")
    handle = await registered(node, dairy, "MILK-5")
    async with node.connection() as owner, node.connection() as stranger:
        await logged_in(owner, dairy)
        await logged_in(stranger, other)
        assert 4 in by_index(await owner.resolve(handle))
        assert 4 not in by_index(await owner.resolve(handle, flags=FLAG_PUBLIC_ONLY))
        assert 4 not in by_index(await stranger.resolve(handle))
        # The owner grants the other enterprise read access over HTTP: the same rule applies.
        await grant(node.http, dairy, other["prefix"], handle)
        assert 4 in by_index(await stranger.resolve(handle))


async def test_another_enterprise_cannot_write_under_a_prefix_it_does_not_hold(
    node: NativeNode,
) -> None:
    dairy = await create_enterprise(node.http)
    other = await create_enterprise(node.http, "Other Co")
    async with node.connection() as client:
        await logged_in(client, other)
        refused = await client.create(f"{dairy['prefix']}/X", [url(1, "https://x")])
    assert refused.code == 401
    assert "may write only under" in refused.error


async def test_values_breaking_the_value_rules_are_refused(node: NativeNode) -> None:
    dairy = await create_enterprise(node.http)
    async with node.connection() as client:
        await logged_in(client, dairy)
        bad = await client.create(f"{dairy['prefix']}/BAD", [url(0, "https://x")])
    assert bad.code == RC_INVALID_VALUE
    assert "'index'" in bad.error


async def test_native_registrations_are_counted_with_their_channel(node: NativeNode) -> None:
    dairy = await create_enterprise(node.http)
    before = await native_registrations(node)
    async with node.connection() as client:
        await logged_in(client, dairy)
        for n in range(3):
            created = await client.create(f"{dairy['prefix']}/M-{n}", [url(1, "https://x")])
            assert created.code == RC_SUCCESS
    assert await native_registrations(node) == before + 3


async def native_registrations(node: NativeNode) -> float:
    metrics = await node.http.get("/metrics", headers=OPERATOR)
    line = 'idnode_registrations_total{channel="handle"} '
    (value,) = [row[len(line) :] for row in metrics.text.splitlines() if row.startswith(line)]
    return float(value)


async def test_a_native_write_reaches_another_process_s_cache(settings: Settings) -> None:
    # Two nodes on one database stand for two worker processes: each has its own cache.
    async with native_node(settings) as writer:
        dairy = await create_enterprise(writer.http)
        handle = await registered(writer, dairy, "SHARED-1")
        async with native_node(settings, fresh=False) as reader:
            async with reader.connection() as client:
                assert by_index(await client.resolve(handle, indexes=[1])) == {
                    1: "https://example.com/p"
                }  # now cached in the reader
            async with writer.connection() as client:
                await logged_in(client, dairy)
                changed = await client.modify(handle, [url(1, "https://example.com/v2")])
                assert changed.code == RC_SUCCESS
            seen = None
            for _ in range(100):  # bounded: 5 s
                async with reader.connection() as client:
                    seen = by_index(await client.resolve(handle, indexes=[1]))
                if seen == {1: "https://example.com/v2"}:
                    break
                await asyncio.sleep(0.05)
            assert seen == {1: "https://example.com/v2"}
