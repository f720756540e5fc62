"""The Handle REST response-code table (docs/domain.md section 3), row by row.

Every answer is checked by HTTP status *and* the JSON ``responseCode``; error answers must
also carry a ``message``. Then the query parameters: filters, ``pretty``, ``?index=`` on PUT
and DELETE, and ``publicOnly``.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import OPERATOR, bearer, create_enterprise, url_value

ANONYMOUS: dict[str, str] = {}
HS_ADMIN_INDEX = 100  # the node adds the owner's HS_ADMIN at the first free index from 100


# --- helpers ---


def value(index: int, vtype: str, text: str, **extra: Any) -> dict[str, Any]:
    return {"index": index, "type": vtype, "data": {"format": "string", "value": text}, **extra}


def expect(response: httpx.Response, status: int, code: int) -> dict[str, Any]:
    """Assert the HTTP status and the Handle responseCode; errors must explain themselves."""
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    body = response.json()
    assert body["responseCode"] == code, body
    if code != 1:
        assert isinstance(body.get("message"), str), body
        assert body["message"].strip(), body
    return dict(body)


def indexes(body: dict[str, Any]) -> list[int]:
    return [v["index"] for v in body["values"]]


def by_index(body: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {v["index"]: v for v in body["values"]}


def text_of(body: dict[str, Any], index: int) -> Any:
    return by_index(body)[index]["data"]["value"]


async def put(
    client: httpx.AsyncClient,
    handle: str,
    values: list[dict[str, Any]],
    headers: dict[str, str],
    **params: Any,
) -> httpx.Response:
    return await client.put(
        f"/api/handles/{handle}", json={"values": values}, headers=headers, params=params
    )


async def resolve(
    client: httpx.AsyncClient, handle: str, headers: dict[str, str] = ANONYMOUS, **params: Any
) -> httpx.Response:
    return await client.get(f"/api/handles/{handle}", headers=headers, params=params)


async def registered(
    client: httpx.AsyncClient, values: list[dict[str, Any]], suffix: str = "MILK-1"
) -> tuple[dict[str, Any], str]:
    """An enterprise and one identifier of it holding ``values``."""
    dairy = await create_enterprise(client)
    handle = f"{dairy['prefix']}/{suffix}"
    expect(await put(client, handle, values, bearer(dairy)), 201, 1)
    return dairy, handle


async def current(client: httpx.AsyncClient, handle: str) -> dict[str, Any]:
    """The full record as the operator sees it."""
    return expect(await resolve(client, handle, OPERATOR), 200, 1)


# --- 1: success ---


async def test_create_is_201_code_1(client: httpx.AsyncClient) -> None:
    dairy = await create_enterprise(client)
    handle = f"{dairy['prefix']}/NEW"
    body = expect(
        await put(client, handle, [url_value("https://a.example")], bearer(dairy)), 201, 1
    )
    assert body["handle"] == handle
    assert indexes(body) == [1, HS_ADMIN_INDEX]


async def test_resolve_is_200_code_1(client: httpx.AsyncClient) -> None:
    _, handle = await registered(client, [url_value("https://a.example")])
    body = expect(await resolve(client, handle), 200, 1)
    assert body["handle"] == handle
    assert text_of(body, 1) == "https://a.example"


async def test_replace_is_200_code_1(client: httpx.AsyncClient) -> None:
    dairy, handle = await registered(client, [url_value("https://a.example")])
    replaced = await put(client, handle, [url_value("https://b.example")], bearer(dairy))
    assert text_of(expect(replaced, 200, 1), 1) == "https://b.example"
    assert text_of(await current(client, handle), 1) == "https://b.example"


async def test_overwrite_false_creates_a_new_handle(client: httpx.AsyncClient) -> None:
    dairy = await create_enterprise(client)
    handle = f"{dairy['prefix']}/FRESH"
    created = await put(
        client, handle, [url_value("https://a.example")], bearer(dairy), overwrite="false"
    )
    expect(created, 201, 1)


# --- 100: handle not found ---


async def test_resolve_unknown_handle_is_404_code_100(client: httpx.AsyncClient) -> None:
    dairy = await create_enterprise(client)
    expect(await resolve(client, f"{dairy['prefix']}/NOPE"), 404, 100)


async def test_delete_unknown_handle_is_404_code_100(client: httpx.AsyncClient) -> None:
    dairy = await create_enterprise(client)
    answer = await client.delete(f"/api/handles/{dairy['prefix']}/NOPE", headers=bearer(dairy))
    expect(answer, 404, 100)


async def test_put_index_on_unknown_handle_is_404_code_100(client: httpx.AsyncClient) -> None:
    dairy = await create_enterprise(client)
    answer = await put(
        client, f"{dairy['prefix']}/NOPE", [url_value("https://a.example")], bearer(dairy), index=1
    )
    expect(answer, 404, 100)


# --- 101: handle already exists ---


async def test_overwrite_false_on_existing_handle_is_409_code_101(
    client: httpx.AsyncClient,
) -> None:
    dairy, handle = await registered(client, [url_value("https://a.example")])
    answer = await put(
        client, handle, [url_value("https://b.example")], bearer(dairy), overwrite="false"
    )
    expect(answer, 409, 101)
    assert text_of(await current(client, handle), 1) == "https://a.example"


# --- 102: invalid handle ---

INVALID_HANDLES = {
    "no slash": "88.999.1",
    "control character": "88.999.1/MILK%01X",
    "newline": "88.999.1/CTL%0AX",
    "prefix too long": "88.999." + "1" * 60 + "/X",
    "empty suffix": "88.999.1/",
    "empty prefix segment": "88..999/X",
    "bad prefix character": "88.9 99/X",
}


@pytest.mark.parametrize("path", INVALID_HANDLES.values(), ids=INVALID_HANDLES.keys())
async def test_resolve_invalid_handle_is_400_code_102(client: httpx.AsyncClient, path: str) -> None:
    expect(await client.get(f"/api/handles/{path}"), 400, 102)


@pytest.mark.parametrize("path", INVALID_HANDLES.values(), ids=INVALID_HANDLES.keys())
async def test_put_invalid_handle_is_400_code_102(client: httpx.AsyncClient, path: str) -> None:
    await create_enterprise(client)  # 88.999.1, so only the handle itself is wrong
    answer = await client.put(
        f"/api/handles/{path}", json={"values": [url_value("https://a.example")]}, headers=OPERATOR
    )
    expect(answer, 400, 102)


@pytest.mark.parametrize("method", ["GET", "PATCH"])
async def test_invalid_handle_on_the_identifiers_api_is_named(
    client: httpx.AsyncClient, method: str
) -> None:
    answer = await client.request(
        method, "/api/v1/identifiers/88.999.1/CTL%0AX", json={"attributes": {}}, headers=OPERATOR
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "InvalidHandle"


# --- 200: values not found ---


@pytest.mark.parametrize(
    "params",
    [{"type": "EMAIL"}, {"index": 42}, {"type": ["EMAIL", "DESC"], "index": [7, 8]}],
    ids=["type", "index", "several"],
)
async def test_filters_matching_nothing_is_200_code_200(
    client: httpx.AsyncClient, params: dict[str, Any]
) -> None:
    _, handle = await registered(client, [url_value("https://a.example")])
    body = expect(await resolve(client, handle, **params), 200, 200)
    assert body["handle"] == handle
    assert body["values"] == []


async def test_delete_missing_index_is_400_code_200(client: httpx.AsyncClient) -> None:
    dairy, handle = await registered(client, [url_value("https://a.example")])
    answer = await client.delete(
        f"/api/handles/{handle}", params={"index": 7}, headers=bearer(dairy)
    )
    expect(answer, 400, 200)
    assert indexes(await current(client, handle)) == [1, HS_ADMIN_INDEX]


async def test_delete_with_one_missing_index_removes_nothing(client: httpx.AsyncClient) -> None:
    dairy, handle = await registered(
        client, [url_value("https://a.example"), value(2, "EMAIL", "a@example.com")]
    )
    answer = await client.delete(
        f"/api/handles/{handle}", params={"index": [2, 7]}, headers=bearer(dairy)
    )
    expect(answer, 400, 200)
    assert indexes(await current(client, handle)) == [1, 2, HS_ADMIN_INDEX]


# --- 201: value already exists ---


async def test_put_existing_index_with_overwrite_false_is_409_code_201(
    client: httpx.AsyncClient,
) -> None:
    dairy, handle = await registered(client, [url_value("https://a.example")])
    answer = await put(
        client,
        handle,
        [url_value("https://b.example")],
        bearer(dairy),
        index=1,
        overwrite="false",
    )
    expect(answer, 409, 201)
    assert text_of(await current(client, handle), 1) == "https://a.example"


async def test_put_new_index_with_overwrite_false_adds_it(client: httpx.AsyncClient) -> None:
    dairy, handle = await registered(client, [url_value("https://a.example")])
    answer = await put(
        client,
        handle,
        [value(2, "EMAIL", "a@example.com")],
        bearer(dairy),
        index=2,
        overwrite="false",
    )
    assert indexes(expect(answer, 200, 1)) == [1, 2, HS_ADMIN_INDEX]


# --- 202: invalid value ---

INVALID_BODIES: dict[str, Any] = {
    "duplicate index": {"values": [url_value("https://a.example"), value(1, "EMAIL", "a@b.c")]},
    "index zero": {"values": [url_value("https://a.example", index=0)]},
    "index not a number": {"values": [{"index": "1", "type": "URL", "data": "https://a.b"}]},
    "missing type": {"values": [{"index": 1, "data": "https://a.example"}]},
    "unknown data format": {
        "values": [{"index": 1, "type": "URL", "data": {"format": "jpeg", "value": "x"}}]
    },
    "bad permissions": {"values": [value(1, "URL", "https://a.example", permissions="12")]},
    "negative ttl": {"values": [value(1, "URL", "https://a.example", ttl=-1)]},
    "values not a list": {"values": {"index": 1}},
    "no values at all": {"handle": "88.999.1/X"},
}


@pytest.mark.parametrize("body", INVALID_BODIES.values(), ids=INVALID_BODIES.keys())
async def test_invalid_value_is_400_code_202(client: httpx.AsyncClient, body: Any) -> None:
    dairy = await create_enterprise(client)
    handle = f"{dairy['prefix']}/BAD"
    answer = await client.put(f"/api/handles/{handle}", json=body, headers=bearer(dairy))
    expect(answer, 400, 202)
    expect(await resolve(client, handle), 404, 100)


# --- 301: not responsible ---


async def test_resolve_outside_node_prefix_is_400_code_301(client: httpx.AsyncClient) -> None:
    expect(await resolve(client, "86.100/X"), 400, 301)


@pytest.mark.parametrize("who", ["owner", "operator"])
async def test_put_outside_node_prefix_is_400_code_301(client: httpx.AsyncClient, who: str) -> None:
    dairy = await create_enterprise(client)
    headers = bearer(dairy) if who == "owner" else OPERATOR
    answer = await put(client, "86.100/X", [url_value("https://a.example")], headers)
    expect(answer, 400, 301)


async def test_operator_put_under_unallocated_prefix_is_400_code_301(
    client: httpx.AsyncClient,
) -> None:
    answer = await put(client, "88.999.77/X", [url_value("https://a.example")], OPERATOR)
    expect(answer, 400, 301)


# --- 401: insufficient permissions ---


async def test_other_enterprise_write_is_403_code_401(client: httpx.AsyncClient) -> None:
    _, handle = await registered(client, [url_value("https://a.example")])
    rival = await create_enterprise(client, name="Rival Dairy")
    answer = await put(client, handle, [url_value("https://evil.example")], bearer(rival))
    expect(answer, 403, 401)
    answer = await client.delete(f"/api/handles/{handle}", headers=bearer(rival))
    expect(answer, 403, 401)
    assert text_of(await current(client, handle), 1) == "https://a.example"


# --- 402: authentication needed ---


async def test_anonymous_write_is_401_code_402_with_challenge(client: httpx.AsyncClient) -> None:
    _, handle = await registered(client, [url_value("https://a.example")])
    for answer in (
        await put(client, handle, [url_value("https://evil.example")], ANONYMOUS),
        await put(client, f"{handle}-NEW", [url_value("https://evil.example")], ANONYMOUS),
        await client.delete(f"/api/handles/{handle}"),
    ):
        expect(answer, 401, 402)
        assert answer.headers.get("www-authenticate"), answer.headers
    assert text_of(await current(client, handle), 1) == "https://a.example"


async def test_wrong_token_is_401_code_402_with_challenge(client: httpx.AsyncClient) -> None:
    _, handle = await registered(client, [url_value("https://a.example")])
    answer = await resolve(client, handle, {"Authorization": "Bearer idn_not-a-token"})
    expect(answer, 401, 402)
    assert answer.headers.get("www-authenticate")


# --- 4: malformed request ---


@pytest.mark.parametrize(
    "raw", [b'{"values": [', b"not json", b""], ids=["truncated", "not-json", "empty"]
)
async def test_malformed_json_is_400_code_4(client: httpx.AsyncClient, raw: bytes) -> None:
    dairy = await create_enterprise(client)
    handle = f"{dairy['prefix']}/X"
    answer = await client.put(
        f"/api/handles/{handle}",
        content=raw,
        headers={**bearer(dairy), "Content-Type": "application/json"},
    )
    expect(answer, 400, 4)
    expect(await resolve(client, handle), 404, 100)


async def test_non_numeric_index_filter_is_400_code_4(client: httpx.AsyncClient) -> None:
    _, handle = await registered(client, [url_value("https://a.example")])
    expect(await resolve(client, handle, index="first"), 400, 4)


# --- filters ---

FILTERED_RECORD = [
    url_value("https://a.example"),
    value(2, "EMAIL", "info@example.com"),
    value(3, "EMAIL.WORK", "work@example.com"),
    value(4, "EMAILX", "not-an-email-subtype"),
    value(5, "DESC", "UHT milk 1 L"),
]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"type": "URL"}, [1]),
        ({"type": ["URL", "DESC"]}, [1, 5]),
        ({"index": [2, 4]}, [2, 4]),
        ({"type": "URL", "index": 5}, [1, 5]),
        ({"type": "DESC", "index": 5}, [5]),
        ({"type": "EMAIL"}, [2]),
        ({"type": "EMAIL."}, [2, 3]),
        ({"type": "HS_ADMIN", "index": 3}, [3, HS_ADMIN_INDEX]),
        ({"index": [1, 99]}, [1]),
        ({"type": "url"}, [1]),
        ({"type": "email."}, [2, 3]),
        ({"type": ["Email.Work", "desc"]}, [3, 5]),
    ],
    ids=[
        "one-type",
        "repeated-type",
        "repeated-index",
        "type-or-index",
        "overlapping",
        "exact-type",
        "subtypes",
        "admin-and-index",
        "one-index-missing",
        "any-case",
        "any-case-subtypes",
        "any-case-repeated",
    ],
)
async def test_filters_return_values_matching_any(
    client: httpx.AsyncClient, params: dict[str, Any], expected: list[int]
) -> None:
    _, handle = await registered(client, FILTERED_RECORD)
    body = expect(await resolve(client, handle, **params), 200, 1)
    assert indexes(body) == expected


async def test_no_filter_returns_every_value(client: httpx.AsyncClient) -> None:
    _, handle = await registered(client, FILTERED_RECORD)
    body = expect(await resolve(client, handle), 200, 1)
    assert indexes(body) == [1, 2, 3, 4, 5, HS_ADMIN_INDEX]


# --- pretty ---


async def test_pretty_indents_the_json(client: httpx.AsyncClient) -> None:
    _, handle = await registered(client, [url_value("https://a.example")])
    plain = await resolve(client, handle)
    pretty = await resolve(client, handle, pretty="true")
    expect(pretty, 200, 1)
    assert "\n" not in plain.text
    assert '\n  "responseCode": 1' in pretty.text
    assert pretty.json() == plain.json()


async def test_pretty_on_put(client: httpx.AsyncClient) -> None:
    dairy = await create_enterprise(client)
    answer = await put(
        client,
        f"{dairy['prefix']}/P",
        [url_value("https://a.example")],
        bearer(dairy),
        pretty="true",
    )
    expect(answer, 201, 1)
    assert '\n  "responseCode": 1' in answer.text


# --- PUT ?index= ---


async def test_put_index_replaces_only_that_value(client: httpx.AsyncClient) -> None:
    dairy, handle = await registered(
        client, [url_value("https://a.example"), value(2, "EMAIL", "old@example.com")]
    )
    before = by_index(await current(client, handle))
    answer = await put(
        client,
        handle,
        [value(2, "EMAIL", "new@example.com"), value(3, "DESC", "not asked for")],
        bearer(dairy),
        index=2,
    )
    expect(answer, 200, 1)
    after = await current(client, handle)
    assert indexes(after) == [1, 2, HS_ADMIN_INDEX]
    assert text_of(after, 2) == "new@example.com"
    assert by_index(after)[1] == before[1]
    assert by_index(after)[HS_ADMIN_INDEX] == before[HS_ADMIN_INDEX]


async def test_put_index_adds_a_new_value(client: httpx.AsyncClient) -> None:
    dairy, handle = await registered(client, [url_value("https://a.example")])
    answer = await put(client, handle, [value(7, "DESC", "added")], bearer(dairy), index=7)
    expect(answer, 200, 1)
    after = await current(client, handle)
    assert indexes(after) == [1, 7, HS_ADMIN_INDEX]
    assert text_of(after, 1) == "https://a.example"


async def test_put_repeated_index_replaces_those_values(client: httpx.AsyncClient) -> None:
    dairy, handle = await registered(
        client,
        [url_value("https://a.example"), value(2, "EMAIL", "a@x.y"), value(3, "DESC", "old")],
    )
    answer = await put(
        client,
        handle,
        [url_value("https://b.example"), value(3, "DESC", "new")],
        bearer(dairy),
        index=[1, 3],
    )
    expect(answer, 200, 1)
    after = await current(client, handle)
    assert [text_of(after, i) for i in (1, 2, 3)] == ["https://b.example", "a@x.y", "new"]


async def test_put_index_various_applies_every_value_sent(client: httpx.AsyncClient) -> None:
    dairy, handle = await registered(
        client, [url_value("https://a.example"), value(2, "EMAIL", "old@example.com")]
    )
    answer = await put(
        client,
        handle,
        [value(2, "EMAIL", "new@example.com"), value(3, "DESC", "added")],
        bearer(dairy),
        index="various",
    )
    expect(answer, 200, 1)
    after = await current(client, handle)
    assert indexes(after) == [1, 2, 3, HS_ADMIN_INDEX]
    assert [text_of(after, i) for i in (1, 2, 3)] == [
        "https://a.example",
        "new@example.com",
        "added",
    ]


async def test_put_index_not_in_body_is_400_code_202(client: httpx.AsyncClient) -> None:
    dairy, handle = await registered(client, [url_value("https://a.example")])
    answer = await put(client, handle, [value(2, "DESC", "x")], bearer(dairy), index=5)
    expect(answer, 400, 202)
    assert indexes(await current(client, handle)) == [1, HS_ADMIN_INDEX]


# --- DELETE ?index= ---


async def test_delete_index_removes_only_that_value(client: httpx.AsyncClient) -> None:
    dairy, handle = await registered(
        client,
        [url_value("https://a.example"), value(2, "EMAIL", "a@x.y"), value(3, "DESC", "d")],
    )
    answer = await client.delete(
        f"/api/handles/{handle}", params={"index": 2}, headers=bearer(dairy)
    )
    assert indexes(expect(answer, 200, 1)) == [1, 3, HS_ADMIN_INDEX]
    after = await current(client, handle)
    assert indexes(after) == [1, 3, HS_ADMIN_INDEX]
    assert text_of(after, 1) == "https://a.example"


async def test_delete_repeated_index(client: httpx.AsyncClient) -> None:
    dairy, handle = await registered(
        client,
        [url_value("https://a.example"), value(2, "EMAIL", "a@x.y"), value(3, "DESC", "d")],
    )
    answer = await client.delete(
        f"/api/handles/{handle}", params={"index": [1, 3]}, headers=bearer(dairy)
    )
    expect(answer, 200, 1)
    assert indexes(await current(client, handle)) == [2, HS_ADMIN_INDEX]


async def test_delete_without_index_removes_the_handle(client: httpx.AsyncClient) -> None:
    dairy, handle = await registered(client, [url_value("https://a.example")])
    expect(await client.delete(f"/api/handles/{handle}", headers=bearer(dairy)), 200, 1)
    expect(await resolve(client, handle), 404, 100)


# --- publicOnly ---

RESTRICTED = value(2, "EMAIL", "owner-only@example.com", permissions="1100")


async def visible(
    client: httpx.AsyncClient, handle: str, headers: dict[str, str], **params: Any
) -> list[int]:
    return indexes(expect(await resolve(client, handle, headers, **params), 200, 1))


async def test_restricted_value_hidden_from_anonymous(client: httpx.AsyncClient) -> None:
    _, handle = await registered(client, [url_value("https://a.example"), RESTRICTED])
    assert await visible(client, handle, ANONYMOUS) == [1, HS_ADMIN_INDEX]
    assert await visible(client, handle, ANONYMOUS, publicOnly="false") == [1, HS_ADMIN_INDEX]
    assert "owner-only" not in (await resolve(client, handle)).text


async def test_restricted_value_returned_to_owner_and_operator(client: httpx.AsyncClient) -> None:
    dairy, handle = await registered(client, [url_value("https://a.example"), RESTRICTED])
    for headers in (bearer(dairy), OPERATOR):
        body = expect(await resolve(client, handle, headers), 200, 1)
        assert indexes(body) == [1, 2, HS_ADMIN_INDEX]
        assert by_index(body)[2]["permissions"] == "1100"
        assert text_of(body, 2) == "owner-only@example.com"


async def test_public_only_hides_restricted_value_from_owner(client: httpx.AsyncClient) -> None:
    dairy, handle = await registered(client, [url_value("https://a.example"), RESTRICTED])
    assert await visible(client, handle, bearer(dairy), publicOnly="true") == [1, HS_ADMIN_INDEX]
    assert await visible(client, handle, bearer(dairy), publicOnly="false") == [
        1,
        2,
        HS_ADMIN_INDEX,
    ]


async def test_restricted_value_hidden_from_other_enterprise(client: httpx.AsyncClient) -> None:
    _, handle = await registered(client, [url_value("https://a.example"), RESTRICTED])
    rival = await create_enterprise(client, name="Rival Dairy")
    assert await visible(client, handle, bearer(rival)) == [1, HS_ADMIN_INDEX]
    assert await visible(client, handle, bearer(rival), publicOnly="false") == [1, HS_ADMIN_INDEX]


async def test_index_filter_on_hidden_value_finds_nothing(client: httpx.AsyncClient) -> None:
    _, handle = await registered(client, [url_value("https://a.example"), RESTRICTED])
    body = expect(await resolve(client, handle, index=2), 200, 200)
    assert body["values"] == []
