"""Records and their views, and the resolution engine over a store."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from resolver.engine import Resolver, within
from resolver.errors import HandleNotFound, NotResponsible
from resolver.identifier import parse_handle
from resolver.record import Record, encode, record_body
from resolver.values import HandleValue, value_json


def hv(index: int, vtype: str, data: Any = "x", **fields: Any) -> HandleValue:
    return HandleValue(index=index, type=vtype, format="string", value=data, **fields)


RECORD = Record(
    "88.999.1/MILK-1",
    (
        hv(1, "URL", "https://example.com/milk/1", ttl=3600),
        hv(2, "EMAIL", "ops@example.com"),
        hv(3, "EMAIL.work", "work@example.com", ttl=600),
        hv(4, "EMAILX", "x@example.com"),
        hv(5, "EMAIL.work.night", "night@example.com"),
        hv(100, "HS_ADMIN", "admin", permissions="1100"),
        hv(2001, "batch", "B-7", permissions="0010"),
        hv(2002, "secret", "s", permissions="0000"),
    ),
)


def indexes(record: Record) -> list[int]:
    return [v.index for v in record.values]


# --- select ---


def test_select_without_filters_is_the_whole_record() -> None:
    assert RECORD.select() == RECORD
    assert RECORD.select([], []) == RECORD


@pytest.mark.parametrize(
    ("types", "wanted_indexes", "expected"),
    [
        (["URL"], [], [1]),
        (["EMAIL"], [], [2]),  # an exact type does not match its sub-types
        (["EMAIL.work"], [], [3]),
        (["EMAIL."], [], [2, 3, 5]),  # 'EMAIL.' matches EMAIL and EMAIL.*, not EMAILX
        (["EMAIL.work."], [], [3, 5]),
        (["EMAILX"], [], [4]),
        (["NOPE"], [], []),
        (["NOPE."], [], []),
        (["URL", "HS_ADMIN"], [], [1, 100]),
        ([], [2001], [2001]),
        ([], [1, 2002, 9999], [1, 2002]),
        ([], [9999], []),
        # a value matching ANY filter is returned, once, in record order
        (["URL"], [2001], [1, 2001]),
        (["URL"], [1], [1]),
        (["EMAIL."], [1, 3], [1, 2, 3, 5]),
    ],
)
def test_select_returns_values_matching_any_filter(
    types: list[str], wanted_indexes: list[int], expected: list[int]
) -> None:
    selected = RECORD.select(types, wanted_indexes)
    assert selected.handle == RECORD.handle
    assert indexes(selected) == expected


def test_select_accepts_any_collection() -> None:
    assert indexes(RECORD.select({"URL"}, {2001})) == [1, 2001]
    assert indexes(RECORD.select(("EMAIL.",), ())) == [2, 3, 5]


def test_email_dot_does_not_match_emailx() -> None:
    matched = {v.type for v in RECORD.select(["EMAIL."]).values}
    assert matched == {"EMAIL", "EMAIL.work", "EMAIL.work.night"}
    assert "EMAILX" not in matched


# --- views ---


def test_public_drops_values_the_public_may_not_read() -> None:
    public = RECORD.public()
    assert public.handle == RECORD.handle
    assert indexes(public) == [1, 2, 3, 4, 5, 2001]  # 100 ('1100') and 2002 ('0000') go


def test_readable_by_admin_keeps_public_and_admin_readable_values() -> None:
    # 2001 ('0010') is public-read only, still visible to the owner; 2002 ('0000') is not
    assert indexes(RECORD.readable_by_admin()) == [1, 2, 3, 4, 5, 100, 2001]


def test_admin_only_value_is_hidden_from_public_but_not_from_admin() -> None:
    record = Record("88.999.1/A", (hv(1, "NOTE", permissions="1000"),))
    assert record.public().values == ()
    assert indexes(record.readable_by_admin()) == [1]


def test_min_ttl() -> None:
    assert RECORD.min_ttl() == 600
    assert RECORD.select(["URL"]).min_ttl() == 3600
    assert Record("88.999.1/A", (hv(1, "URL", ttl=0), hv(2, "X"))).min_ttl() == 0
    assert Record("88.999.1/A", ()).min_ttl() is None


def test_first_is_the_first_value_of_exactly_that_type() -> None:
    record = Record("88.999.1/A", (hv(3, "URL", "a"), hv(1, "URL", "b"), hv(2, "URL.alt", "c")))
    first = record.first("URL")
    assert first is not None
    assert first.value == "a"
    assert record.first("URL.") is None
    assert record.first("EMAIL") is None
    assert RECORD.first("EMAIL") == hv(2, "EMAIL", "ops@example.com")


def test_record_body_and_encode() -> None:
    record = Record("88.999.1/A", (hv(1, "URL", "https://e.x"),))
    body = record_body(record)
    assert body == {
        "responseCode": 1,
        "handle": "88.999.1/A",
        "values": [value_json(record.values[0])],
    }
    assert orjson.loads(encode(body)) == body
    assert orjson.loads(encode(body, pretty=True)) == body
    assert b"\n" in encode(body, pretty=True)
    assert record_body(record, response_code=200)["responseCode"] == 200


# --- the engine ---


class MemoryStore:
    """A test double of the store interface: records by normalised handle text."""

    def __init__(self, *records: Record) -> None:
        self.records = {r.handle: r for r in records}
        self.asked: list[str] = []

    async def fetch(self, handle: str) -> Record | None:
        self.asked.append(handle)
        return self.records.get(handle)


MILK = Record("88.999.1/MILK-1", (hv(1, "URL", "https://example.com/milk/1"),))
ABC = Record("88.999.ABC/x", (hv(1, "URL", "https://example.com/abc"),))
NODE_PREFIX_RECORD = Record("0.NA/88.999", (hv(100, "HS_ADMIN"),))
ENTERPRISE_PREFIX_RECORD = Record("0.NA/88.999.1", (hv(100, "HS_ADMIN"),))


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore(MILK, ABC, NODE_PREFIX_RECORD, ENTERPRISE_PREFIX_RECORD)


@pytest.fixture
def resolver(store: MemoryStore) -> Resolver:
    return Resolver(store, node_prefix="88.999")


async def test_local_handle_is_looked_up(resolver: Resolver, store: MemoryStore) -> None:
    assert (await resolver.resolve(parse_handle("88.999.1/MILK-1"))).record() == MILK
    assert store.asked == ["88.999.1/MILK-1"]


async def test_lookup_uses_the_normalised_handle(resolver: Resolver, store: MemoryStore) -> None:
    assert (await resolver.resolve(parse_handle("88.999.abc/x"))).record() == ABC
    assert store.asked == ["88.999.ABC/x"]


async def test_suffix_case_matters(resolver: Resolver) -> None:
    with pytest.raises(HandleNotFound):
        await resolver.resolve(parse_handle("88.999.1/milk-1"))


async def test_missing_local_handle_is_not_found(resolver: Resolver) -> None:
    with pytest.raises(HandleNotFound) as caught:
        await resolver.resolve(parse_handle("88.999.1/NOPE"))
    assert caught.value.response_code == 100
    assert "88.999.1/NOPE" in caught.value.message


@pytest.mark.parametrize(
    "text",
    [
        "88.998.1/MILK-1",
        "88.9990/X",  # shares characters with the node prefix but is not under it
        "88.99/X",
        "88/X",  # the parent of the node prefix
        "86.1/X",
        "0.NA/88.9990",
        "0.NA/88",
        "0.NA/86.1",
        "0.NA/0.NA",
    ],
)
async def test_handles_outside_the_node_prefix_are_not_this_nodes(
    resolver: Resolver, store: MemoryStore, text: str
) -> None:
    handle = parse_handle(text)
    assert not resolver.is_local(handle)
    with pytest.raises(NotResponsible) as caught:
        await resolver.resolve(handle)
    assert caught.value.response_code == 301
    assert "88.999" in caught.value.message
    assert str(handle) in caught.value.message
    assert store.asked == []  # never looked up locally


@pytest.mark.parametrize(
    "text",
    ["88.999/X", "88.999.1/X", "88.999.1.2/X", "0.NA/88.999", "0.NA/88.999.1", "0.na/88.999.7"],
)
def test_handles_under_the_node_prefix_are_local(resolver: Resolver, text: str) -> None:
    assert resolver.is_local(parse_handle(text))


async def test_prefix_records_under_the_node_are_resolved_locally(resolver: Resolver) -> None:
    assert (
        await resolver.resolve(parse_handle("0.NA/88.999.1"))
    ).record() == ENTERPRISE_PREFIX_RECORD
    assert (await resolver.resolve(parse_handle("0.na/88.999"))).record() == NODE_PREFIX_RECORD
    with pytest.raises(HandleNotFound):
        await resolver.resolve(parse_handle("0.NA/88.999.2"))


async def test_node_prefix_with_letters(store: MemoryStore) -> None:
    resolver = Resolver(store, node_prefix="88.999.ABC")
    assert (await resolver.resolve(parse_handle("88.999.abc/x"))).record() == ABC
    with pytest.raises(NotResponsible):
        await resolver.resolve(parse_handle("88.999.1/MILK-1"))


@pytest.mark.parametrize(
    ("prefix", "parent", "expected"),
    [
        ("88.999", "88.999", True),
        ("88.999.1", "88.999", True),
        ("88.999.1.2", "88.999", True),
        ("88.9990", "88.999", False),
        ("88.99", "88.999", False),
        ("88", "88.999", False),
    ],
)
def test_within(prefix: str, parent: str, expected: bool) -> None:
    assert within(prefix, parent) is expected
