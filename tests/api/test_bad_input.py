"""Bad input is refused with a clear Handle error and writes nothing; good input is written
exactly once, whole, however many clients write at the same time.

Runs on both backends (the ``client`` fixture is parametrised over SQLite and PostgreSQL).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.registry import clock
from app.settings import Settings
from tests.conftest import (
    OPERATOR_TOKEN,
    bearer,
    create_enterprise,
    node_client,
    url_value,
)

SMALL_LIMIT = 2048
JSON_HEADERS = {"Content-Type": "application/json"}


# --- fixtures and helpers ---


@pytest.fixture
async def small_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A node (same database as ``settings``) that accepts request bodies of 2 KiB at most."""
    small = Settings(
        database_url=settings.database_url,
        admin_token=OPERATOR_TOKEN,
        max_request_bytes=SMALL_LIMIT,
    )
    async with node_client(small, emptied=True) as http:
        yield http


def values_of(writer: int) -> list[dict[str, Any]]:
    """A full record whose every value names its writer (indexes differ per writer too)."""
    return [
        url_value(f"https://trace.example.com/writer/{writer}", 1),
        {"index": 2, "type": "WRITER", "data": f"writer-{writer}"},
        {"index": 3, "type": "EMAIL", "data": f"writer-{writer}@example.com", "ttl": writer},
        {"index": 1000 + writer, "type": "MARK", "data": f"writer-{writer}"},
    ]


class Existing:
    """A record written before the bad request, and a handle that must stay unregistered."""

    def __init__(self, client: httpx.AsyncClient, enterprise: dict[str, Any]) -> None:
        self.client = client
        self.enterprise = enterprise
        self.handle = f"{enterprise['prefix']}/LOT-EXISTING"
        self.new_handle = f"{enterprise['prefix']}/LOT-NEW"
        self.before: bytes = b""

    async def write(self) -> None:
        created = await self.client.put(
            f"/api/handles/{self.handle}",
            json={
                "values": [
                    url_value("https://trace.example.com/lot/existing"),
                    {"index": 2, "type": "BATCH", "data": "B-1", "ttl": 600},
                ]
            },
            headers=bearer(self.enterprise),
        )
        assert created.status_code == 201, created.text
        self.before = await self.snapshot()

    async def snapshot(self) -> bytes:
        resolved = await self.client.get(
            f"/api/handles/{self.handle}", headers=bearer(self.enterprise)
        )
        assert resolved.status_code == 200, resolved.text
        return resolved.content

    async def assert_untouched(self) -> None:
        assert await self.snapshot() == self.before
        missing = await self.client.get(f"/api/handles/{self.new_handle}")
        assert missing.status_code == 404, missing.text
        assert missing.json()["responseCode"] == 100

    async def send_everywhere(
        self, client: httpx.AsyncClient, **request: Any
    ) -> list[httpx.Response]:
        """The same body as a replace, a partial update and a create."""
        headers = {**bearer(self.enterprise), **request.pop("headers", {})}
        answers = []
        for url in (
            f"/api/handles/{self.handle}",
            f"/api/handles/{self.handle}?index=1",
            f"/api/handles/{self.handle}?index=various",
            f"/api/handles/{self.new_handle}",
        ):
            answers.append(await client.put(url, headers=headers, **request))
        return answers


async def existing_record(client: httpx.AsyncClient) -> Existing:
    existing = Existing(client, await create_enterprise(client))
    await existing.write()
    return existing


def assert_handle_error(response: httpx.Response, status: int, code: int | None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    if code is not None:
        assert body["responseCode"] == code, body
    else:
        assert body["responseCode"] != 1, body
    assert isinstance(body.get("message"), str)
    assert body["message"].strip()


async def handles_under(database_url: str, prefix: str) -> list[str]:
    """Every stored identifier under ``prefix`` except the enterprise's admin identity."""
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT handle FROM handles WHERE prefix = :prefix ORDER BY handle"),
                {"prefix": prefix},
            )
            return [h for (h,) in rows if h != f"{prefix}/ADMIN"]
    finally:
        await engine.dispose()


# --- oversized bodies ---


async def test_oversized_body_with_content_length_is_413_and_writes_nothing(
    small_client: httpx.AsyncClient,
) -> None:
    existing = await existing_record(small_client)
    big = {"values": [url_value("https://trace.example.com/" + "x" * 4000)]}
    content = orjson.dumps(big)
    assert len(content) > SMALL_LIMIT

    answers = await existing.send_everywhere(small_client, content=content, headers=JSON_HEADERS)

    for answer in answers:
        assert answer.request.headers["content-length"] == str(len(content))
        assert_handle_error(answer, 413, None)
    await existing.assert_untouched()


async def test_oversized_chunked_body_without_content_length_is_413_and_writes_nothing(
    small_client: httpx.AsyncClient,
) -> None:
    existing = await existing_record(small_client)
    chunk = b" " * 512
    total_chunks = 200  # 100 KiB if the node read it all
    pulled: list[int] = []

    def body() -> AsyncIterator[bytes]:
        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"values": [{"index": 1, "type": "URL", "data": "https://x.example/"}]'
            for number in range(total_chunks):
                pulled.append(number)
                yield chunk
            yield b"}"

        return chunks()

    for url in (
        f"/api/handles/{existing.handle}",
        f"/api/handles/{existing.handle}?index=1",
        f"/api/handles/{existing.new_handle}",
    ):
        pulled.clear()
        answer = await small_client.put(
            url, content=body(), headers={**bearer(existing.enterprise), **JSON_HEADERS}
        )
        assert "content-length" not in answer.request.headers
        assert answer.request.headers["transfer-encoding"] == "chunked"
        assert_handle_error(answer, 413, None)
        # The node stopped reading soon after the limit instead of buffering everything.
        assert len(pulled) <= SMALL_LIMIT // len(chunk) + 2, len(pulled)
    await existing.assert_untouched()


async def test_body_at_the_limit_is_accepted(small_client: httpx.AsyncClient) -> None:
    """The limit is the limit: a body just under it is written (the 413 tests are not vacuous)."""
    existing = await existing_record(small_client)
    body = {"values": [url_value("https://trace.example.com/" + "x" * 1800)]}
    content = orjson.dumps(body)
    assert len(content) <= SMALL_LIMIT

    answer = await small_client.put(
        f"/api/handles/{existing.new_handle}",
        content=content,
        headers={**bearer(existing.enterprise), **JSON_HEADERS},
    )
    assert answer.status_code == 201, answer.text


# --- malformed bodies ---


@pytest.mark.parametrize(
    "content",
    [
        b'{"values": [',
        b"not json at all",
        b'{"values": []} trailing',
        b"{'values': []}",
        b'{"values": [{"index": 1, "type": "URL", "data": NaN}]}',
        b"\xff\xfe\x00garbage",
        b"",
        b"   \n",
    ],
    ids=["truncated", "words", "trailing", "single-quotes", "nan", "binary", "empty", "whitespace"],
)
async def test_malformed_or_empty_json_is_400_code_4_and_writes_nothing(
    client: httpx.AsyncClient, content: bytes
) -> None:
    existing = await existing_record(client)
    for answer in await existing.send_everywhere(client, content=content, headers=JSON_HEADERS):
        assert_handle_error(answer, 400, 4)
    await existing.assert_untouched()


@pytest.mark.parametrize(
    "body",
    [
        "a string",
        42,
        None,
        True,
        {"something": "else"},
        {"values": "not a list"},
        {"values": {"index": 1, "type": "URL", "data": "https://x.example/"}},
        [1, 2, 3],
        ["https://x.example/"],
        {"values": [None]},
    ],
    ids=[
        "string",
        "number",
        "null",
        "bool",
        "object-without-values",
        "values-string",
        "values-object",
        "list-of-numbers",
        "list-of-strings",
        "list-of-null",
    ],
)
async def test_body_that_is_not_values_is_400_code_202_and_writes_nothing(
    client: httpx.AsyncClient, body: Any
) -> None:
    existing = await existing_record(client)
    answers = await existing.send_everywhere(
        client, content=orjson.dumps(body), headers=JSON_HEADERS
    )
    for answer in answers:
        assert_handle_error(answer, 400, 202)
    await existing.assert_untouched()


async def test_more_than_1000_values_is_400_and_writes_nothing(client: httpx.AsyncClient) -> None:
    existing = await existing_record(client)
    values = [{"index": i, "type": "ATTR", "data": f"v{i}"} for i in range(1, 1002)]  # 1001 values
    for answer in await existing.send_everywhere(client, json={"values": values}):
        assert_handle_error(answer, 400, 202)
    await existing.assert_untouched()


async def test_exactly_1000_values_are_accepted(client: httpx.AsyncClient) -> None:
    existing = await existing_record(client)
    values = [{"index": i, "type": "ATTR", "data": f"v{i}"} for i in range(1, 1000)]
    values.append(
        {
            "index": 5000,
            "type": "HS_ADMIN",
            "data": {
                "format": "admin",
                "value": {
                    "handle": f"{existing.enterprise['prefix']}/ADMIN",
                    "index": 300,
                    "permissions": "011111110011",
                },
            },
        }
    )
    answer = await client.put(
        f"/api/handles/{existing.new_handle}",
        json={"values": values},
        headers=bearer(existing.enterprise),
    )
    assert answer.status_code == 201, answer.text[:500]
    assert len(answer.json()["values"]) == 1000


async def test_partial_update_that_would_exceed_1000_values_is_400_and_writes_nothing(
    client: httpx.AsyncClient,
) -> None:
    enterprise = await create_enterprise(client)
    handle = f"{enterprise['prefix']}/FULL"
    # 999 values plus the HS_ADMIN value the node adds: exactly 1000.
    values = [{"index": i, "type": "ATTR", "data": f"v{i}"} for i in range(1, 1000)]
    created = await client.put(
        f"/api/handles/{handle}", json={"values": values}, headers=bearer(enterprise)
    )
    assert created.status_code == 201, created.text[:500]
    assert len(created.json()["values"]) == 1000
    before = (await client.get(f"/api/handles/{handle}")).content

    extra = await client.put(
        f"/api/handles/{handle}?index=4000",
        json={"values": [{"index": 4000, "type": "ATTR", "data": "one too many"}]},
        headers=bearer(enterprise),
    )
    assert_handle_error(extra, 400, 202)
    assert (await client.get(f"/api/handles/{handle}")).content == before


async def test_value_over_64_kib_is_400_and_writes_nothing(client: httpx.AsyncClient) -> None:
    existing = await existing_record(client)
    huge = "x" * (64 * 1024 + 1)
    for data in (huge, {"format": "string", "value": huge}):
        body = {
            "values": [
                url_value("https://trace.example.com/ok"),
                {"index": 2, "type": "DOC", "data": data},
            ]
        }
        # index=1 alone is fine, but every sent value is validated: nothing is written.
        for answer in await existing.send_everywhere(client, json=body):
            assert_handle_error(answer, 400, 202)
    await existing.assert_untouched()


async def test_value_just_under_64_kib_is_accepted(client: httpx.AsyncClient) -> None:
    existing = await existing_record(client)
    data = "x" * (60 * 1024)
    answer = await client.put(
        f"/api/handles/{existing.new_handle}",
        json={"values": [{"index": 1, "type": "DOC", "data": data}]},
        headers=bearer(existing.enterprise),
    )
    assert answer.status_code == 201, answer.text[:300]
    assert answer.json()["values"][0]["data"]["value"] == data


async def test_index_clash_is_400_code_202_and_writes_nothing(client: httpx.AsyncClient) -> None:
    existing = await existing_record(client)
    body = {
        "values": [
            url_value("https://trace.example.com/first", 1),
            {"index": 1, "type": "EMAIL", "data": "clash@example.com"},
        ]
    }
    for answer in await existing.send_everywhere(client, json=body):
        assert_handle_error(answer, 400, 202)
    await existing.assert_untouched()


@pytest.mark.parametrize(
    "value",
    [
        {"index": 0, "type": "URL", "data": "https://x.example/"},
        {"index": "1", "type": "URL", "data": "https://x.example/"},
        {"index": 1, "type": "", "data": "https://x.example/"},
        {"index": 1, "type": "URL", "data": {"format": "nope", "value": "x"}},
        {"index": 1, "type": "URL", "data": "https://x.example/", "ttl": -1},
        {"index": 1, "type": "URL", "data": "https://x.example/", "permissions": "11"},
        {"index": 1, "type": "URL", "data": {"format": "base64", "value": "!!!"}},
    ],
    ids=["index-0", "index-string", "empty-type", "format", "ttl", "permissions", "base64"],
)
async def test_one_bad_value_among_good_ones_writes_nothing(
    client: httpx.AsyncClient, value: dict[str, Any]
) -> None:
    existing = await existing_record(client)
    body = {"values": [{"index": 7, "type": "NOTE", "data": "fine"}, value]}
    for answer in await existing.send_everywhere(client, json=body):
        assert_handle_error(answer, 400, 202)
    await existing.assert_untouched()


async def test_index_parameter_without_matching_value_writes_nothing(
    client: httpx.AsyncClient,
) -> None:
    existing = await existing_record(client)
    answer = await client.put(
        f"/api/handles/{existing.handle}?index=1&index=9",
        json={"values": [url_value("https://trace.example.com/changed", 1)]},
        headers=bearer(existing.enterprise),
    )
    assert_handle_error(answer, 400, 202)
    await existing.assert_untouched()


# --- repeated and concurrent writes ---


async def test_identical_put_repeated_leaves_the_same_record_byte_for_byte(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    enterprise = await create_enterprise(client)
    handle = f"{enterprise['prefix']}/MILK-REPEAT"
    body = {
        "values": [
            url_value("https://trace.example.com/milk/repeat"),
            {"index": 2, "type": "BATCH", "data": "B-7", "ttl": 300, "permissions": "1100"},
        ]
    }
    first = await client.put(f"/api/handles/{handle}", json=body, headers=bearer(enterprise))
    assert first.status_code == 201, first.text
    stored = await client.get(f"/api/handles/{handle}", headers=bearer(enterprise))
    stamp = first.json()["values"][0]["timestamp"]

    real_now = clock.now
    later = real_now() + timedelta(hours=3)
    monkeypatch.setattr(clock, "now", lambda: later)

    for url in (f"/api/handles/{handle}", f"/api/handles/{handle}?index=1&index=2"):
        again = await client.put(url, json=body, headers=bearer(enterprise))
        assert again.status_code == 200, again.text
        # Same values, same timestamps. (Compared parsed: on PostgreSQL JSONB reorders the
        # keys inside an admin value, so only the stored record is compared byte for byte.)
        assert again.json() == first.json()
        assert (
            await client.get(f"/api/handles/{handle}", headers=bearer(enterprise))
        ).content == stored.content

    # The clock really moved: a changed value is stamped anew, the unchanged ones are not.
    body["values"][0] = url_value("https://trace.example.com/milk/repeat-v2")
    changed = await client.put(f"/api/handles/{handle}", json=body, headers=bearer(enterprise))
    assert changed.status_code == 200, changed.text
    stamps = {v["index"]: v["timestamp"] for v in changed.json()["values"]}
    assert stamps[1] == clock.handle_timestamp(later)
    assert stamps[1] != stamp
    assert stamps[2] == stamp


async def test_concurrent_full_replaces_leave_exactly_one_writers_record(
    client: httpx.AsyncClient,
) -> None:
    enterprise = await create_enterprise(client)
    handle = f"{enterprise['prefix']}/CONTESTED"
    writers = range(1, 21)

    async def write(writer: int) -> httpx.Response:
        return await client.put(
            f"/api/handles/{handle}", json={"values": values_of(writer)}, headers=bearer(enterprise)
        )

    answers = await asyncio.gather(*(write(w) for w in writers))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * 19 + [201], [a.text for a in answers if a.status_code >= 300]

    final = (await client.get(f"/api/handles/{handle}", headers=bearer(enterprise))).json()
    marks = [v for v in final["values"] if v["type"] == "MARK"]
    assert len(marks) == 1, final
    winner = int(marks[0]["data"]["value"].removeprefix("writer-"))
    assert winner in writers
    # Exactly the winner's full record (plus the HS_ADMIN the node adds), nothing of the others.
    sent = {v["index"]: v for v in values_of(winner)}
    assert {v["index"] for v in final["values"]} == {*sent, 100}
    for value in final["values"]:
        if value["index"] == 100:
            assert value["type"] == "HS_ADMIN"
            continue
        expected = sent[value["index"]]
        data = expected["data"]
        assert value["type"] == expected["type"]
        assert value["data"]["value"] == (data if isinstance(data, str) else data["value"])
        assert value["ttl"] == expected.get("ttl", 86400)
    # And it is what that writer was told it stored.
    told = answers[winner - 1].json()
    assert told["values"] == final["values"]


async def test_concurrent_replaces_of_an_existing_record_are_never_mixed(
    client: httpx.AsyncClient,
) -> None:
    enterprise = await create_enterprise(client)
    handle = f"{enterprise['prefix']}/CONTESTED-2"
    seed = await client.put(
        f"/api/handles/{handle}", json={"values": values_of(0)}, headers=bearer(enterprise)
    )
    assert seed.status_code == 201, seed.text

    answers = await asyncio.gather(
        *(
            client.put(
                f"/api/handles/{handle}",
                json={"values": values_of(w)},
                headers=bearer(enterprise),
            )
            for w in range(1, 21)
        )
    )
    assert [a.status_code for a in answers] == [200] * 20, [a.text for a in answers]
    final = (await client.get(f"/api/handles/{handle}", headers=bearer(enterprise))).json()
    owners = {
        v["data"]["value"].rsplit("/", 1)[-1].removeprefix("writer-").split("@")[0]
        for v in final["values"]
        if v["type"] != "HS_ADMIN"
    }
    assert len(owners) == 1, final
    winner = int(owners.pop())
    assert 1 <= winner <= 20
    assert final["values"] == answers[winner - 1].json()["values"]


async def test_concurrent_partial_updates_of_distinct_indexes_are_all_kept(
    client: httpx.AsyncClient,
) -> None:
    enterprise = await create_enterprise(client)
    handle = f"{enterprise['prefix']}/SHARED"
    base = await client.put(
        f"/api/handles/{handle}",
        json={"values": [url_value("https://trace.example.com/shared")]},
        headers=bearer(enterprise),
    )
    assert base.status_code == 201, base.text
    indexes = range(10, 30)

    async def update(index: int) -> httpx.Response:
        return await client.put(
            f"/api/handles/{handle}?index={index}",
            json={"values": [{"index": index, "type": "STEP", "data": f"step-{index}"}]},
            headers=bearer(enterprise),
        )

    answers = await asyncio.gather(*(update(i) for i in indexes))
    assert [a.status_code for a in answers] == [200] * len(indexes), [a.text for a in answers]

    final = (await client.get(f"/api/handles/{handle}")).json()
    by_index = {v["index"]: v for v in final["values"]}
    assert set(by_index) == {1, 100, *indexes}  # no lost update, nothing else
    for index in indexes:
        assert by_index[index]["data"]["value"] == f"step-{index}"
    assert by_index[1]["data"]["value"] == "https://trace.example.com/shared"
    assert by_index[100]["type"] == "HS_ADMIN"


# --- minting ---


def uuid_suffix(handle: str, prefix: str, stem: str = "") -> str:
    assert handle.startswith(f"{prefix}/{stem}"), handle
    rest = handle[len(prefix) + 1 + len(stem) :]
    assert str(uuid.UUID(rest)) == rest.lower(), rest
    return rest


MINT_BODY = {"values": [url_value("https://trace.example.com/minted")]}


async def test_put_mint_new_suffix_creates_a_uuid_handle(client: httpx.AsyncClient) -> None:
    enterprise = await create_enterprise(client)
    prefix = enterprise["prefix"]
    minted = await client.put(
        f"/api/handles/{prefix}?mintNewSuffix=true", json=MINT_BODY, headers=bearer(enterprise)
    )
    assert minted.status_code == 201, minted.text
    body = minted.json()
    assert body["responseCode"] == 1
    uuid_suffix(body["handle"], prefix)

    resolved = await client.get(f"/api/handles/{body['handle']}")
    assert resolved.status_code == 200
    assert resolved.json()["values"][0]["data"]["value"] == "https://trace.example.com/minted"


async def test_post_mints_under_a_suffix_stem(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    enterprise = await create_enterprise(client)
    prefix = enterprise["prefix"]
    minted = await client.post(
        f"/api/handles/{prefix}/BATCH-", json=MINT_BODY, headers=bearer(enterprise)
    )
    assert minted.status_code == 201, minted.text
    handle = minted.json()["handle"]
    uuid_suffix(handle, prefix, "BATCH-")
    assert (await client.get(f"/api/handles/{handle}")).status_code == 200
    assert await handles_under(settings.database_url, prefix) == [handle]


@pytest.mark.parametrize(
    ("method", "path"),
    [("PUT", "{prefix}?mintNewSuffix=true"), ("POST", "{prefix}/BATCH-"), ("POST", "{prefix}")],
)
async def test_same_idempotency_key_mints_once(
    client: httpx.AsyncClient, settings: Settings, method: str, path: str
) -> None:
    enterprise = await create_enterprise(client)
    prefix = enterprise["prefix"]
    url = "/api/handles/" + path.format(prefix=prefix)
    headers = {**bearer(enterprise), "Idempotency-Key": "order-4711"}

    first = await client.request(method, url, json=MINT_BODY, headers=headers)
    second = await client.request(method, url, json=MINT_BODY, headers=headers)

    assert first.status_code == 201, first.text
    assert second.status_code == 200, second.text
    assert second.json()["handle"] == first.json()["handle"]
    assert second.json()["values"] == first.json()["values"]
    assert await handles_under(settings.database_url, prefix) == [first.json()["handle"]]

    other = await client.request(
        method, url, json=MINT_BODY, headers={**headers, "Idempotency-Key": "order-4712"}
    )
    assert other.status_code == 201, other.text
    assert other.json()["handle"] != first.json()["handle"]
    assert await handles_under(settings.database_url, prefix) == sorted(
        [first.json()["handle"], other.json()["handle"]]
    )


async def test_mints_without_key_give_different_handles(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    enterprise = await create_enterprise(client)
    prefix = enterprise["prefix"]
    handles = set()
    for _ in range(3):
        minted = await client.post(
            f"/api/handles/{prefix}/LOT-", json=MINT_BODY, headers=bearer(enterprise)
        )
        assert minted.status_code == 201, minted.text
        handles.add(minted.json()["handle"])
    assert len(handles) == 3
    assert await handles_under(settings.database_url, prefix) == sorted(handles)


async def test_concurrent_mints_with_one_idempotency_key_create_one_handle(
    client: httpx.AsyncClient,
    settings: Settings,
) -> None:
    enterprise = await create_enterprise(client)
    prefix = enterprise["prefix"]
    headers = {**bearer(enterprise), "Idempotency-Key": "retry-storm"}
    answers = await asyncio.gather(
        *(
            client.post(f"/api/handles/{prefix}/BATCH-", json=MINT_BODY, headers=headers)
            for _ in range(10)
        )
    )
    assert sorted(a.status_code for a in answers) == [200] * 9 + [201], [a.text for a in answers]
    minted = {a.json()["handle"] for a in answers}
    assert len(minted) == 1
    assert await handles_under(settings.database_url, prefix) == sorted(minted)


async def test_idempotency_keys_are_per_enterprise(client: httpx.AsyncClient) -> None:
    dairy = await create_enterprise(client, "Yili Dairy")
    farm = await create_enterprise(client, "Mengniu Farm")
    key = {"Idempotency-Key": "shared-key"}
    a = await client.post(
        f"/api/handles/{dairy['prefix']}", json=MINT_BODY, headers={**bearer(dairy), **key}
    )
    b = await client.post(
        f"/api/handles/{farm['prefix']}", json=MINT_BODY, headers={**bearer(farm), **key}
    )
    assert (a.status_code, b.status_code) == (201, 201), (a.text, b.text)
    assert a.json()["handle"].startswith(dairy["prefix"] + "/")
    assert b.json()["handle"].startswith(farm["prefix"] + "/")


async def test_bad_mint_body_writes_nothing(client: httpx.AsyncClient, settings: Settings) -> None:
    enterprise = await create_enterprise(client)
    prefix = enterprise["prefix"]
    headers = {**bearer(enterprise), "Idempotency-Key": "bad-then-good", **JSON_HEADERS}
    for content in (b"", b"{", orjson.dumps({"values": "x"})):
        answer = await client.post(
            f"/api/handles/{prefix}/BATCH-", content=content, headers=headers
        )
        assert answer.status_code == 400, answer.text
    assert await handles_under(settings.database_url, prefix) == []
    # The refused attempts did not burn the key: a good retry mints.
    good = await client.post(f"/api/handles/{prefix}/BATCH-", json=MINT_BODY, headers=headers)
    assert good.status_code == 201, good.text
