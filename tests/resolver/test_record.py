"""Records and their views (the engine that finds them: test_engine.py)."""

from __future__ import annotations

import orjson
import pytest

from resolver.record import Record, encode, record_body
from resolver.values import value_json
from tests.resolver.doubles import hv

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
        # types compare without regard to ASCII case, as the Handle.Net server does
        (["url"], [], [1]),
        (["email."], [], [2, 3, 5]),
        (["Email.WORK"], [], [3]),
        (["hs_admin"], [], [100]),
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


def test_only_ascii_letters_fold() -> None:
    record = Record("88.999.1/X", (hv(1, "STRASSE", "a"), hv(2, "straße", "b"), hv(3, "ÉTAT", "c")))
    assert indexes(record.select(["straße"])) == [2]  # not "STRASSE" (no Unicode folding)
    assert indexes(record.select(["état"])) == []
    assert indexes(record.select(["ÉTAT"])) == [3]


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
