"""Handle values (docs/domain.md section 3): parsing what clients send, and the JSON codec."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resolver.errors import InvalidValue
from resolver.values import (
    DEFAULT_PERMISSIONS,
    DEFAULT_TTL,
    MAX_INDEX,
    MAX_TTL,
    MAX_TYPE_LENGTH,
    MAX_VALUE_BYTES,
    MAX_VALUES,
    HandleValue,
    Reference,
    parse_values,
    request_values,
    value_json,
    values_from_stored,
)

ADMIN = {"handle": "0.NA/88.999", "index": 200, "permissions": "011111110011"}


def value(**fields: Any) -> dict[str, Any]:
    """A valid raw value with ``fields`` replaced (``None`` drops a field)."""
    raw: dict[str, Any] = {"index": 1, "type": "URL", "data": "https://example.com/p/1"}
    raw.update(fields)
    return {k: v for k, v in raw.items() if v is not None}


def parse_one(**fields: Any) -> HandleValue:
    [parsed] = parse_values([value(**fields)])
    return parsed


def refused(raw: list[Any]) -> str:
    """The message parse_values refuses ``raw`` with."""
    with pytest.raises(InvalidValue) as caught:
        parse_values(raw)
    assert caught.value.response_code == 202
    return caught.value.message


# --- data and its formats ---


def test_plain_string_data_is_shorthand_for_string_format() -> None:
    parsed = parse_one(data="https://example.com/x")
    assert parsed.format == "string"
    assert parsed.value == "https://example.com/x"
    assert value_json(parsed)["data"] == {"format": "string", "value": "https://example.com/x"}


@pytest.mark.parametrize(
    ("data", "fmt", "expected"),
    [
        ({"format": "string", "value": "hello"}, "string", "hello"),
        ({"format": "string", "value": ""}, "string", ""),
        ({"format": "base64", "value": "aGVsbG8="}, "base64", "aGVsbG8="),
        ({"format": "base64", "value": ""}, "base64", ""),
        ({"format": "hex", "value": "0a1B"}, "hex", "0a1B"),
        ({"format": "hex", "value": "0a 1b"}, "hex", "0a 1b"),
        ({"format": "admin", "value": dict(ADMIN)}, "admin", ADMIN),
        (
            {"format": "site", "value": {"servers": [{"address": "10.0.0.1", "port": 2641}]}},
            "site",
            {"servers": [{"address": "10.0.0.1", "port": 2641}]},
        ),
    ],
)
def test_formats_are_accepted(data: dict[str, Any], fmt: str, expected: Any) -> None:
    parsed = parse_one(data=data)
    assert parsed.format == fmt
    assert parsed.value == expected


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"format": "base64", "value": "not base64!"}, "not valid base64"),
        ({"format": "base64", "value": "abc"}, "not valid base64"),  # bad padding
        ({"format": "base64", "value": "é"}, "not valid base64"),  # non-ASCII
        ({"format": "hex", "value": "0g"}, "not valid hex"),
        ({"format": "hex", "value": "abc"}, "not valid hex"),  # odd length
        ({"format": "hex", "value": "é"}, "not valid hex"),
        ({"format": "string", "value": 12}, "must be a JSON string"),
        ({"format": "string"}, "must be a JSON string"),
        ({"format": "base64", "value": None}, "must be a JSON string"),
        ({"format": "hex", "value": ["0a"]}, "must be a JSON string"),
        ({"format": "admin", "value": "0.NA/88.999"}, "admin value must be"),
        ({"format": "admin", "value": [ADMIN]}, "admin value must be"),
        ({"format": "site", "value": "10.0.0.1"}, "site value must be a JSON object"),
        ({"format": "xml", "value": "<a/>"}, "'xml' is not one of"),
        ({"format": "STRING", "value": "x"}, "is not one of"),
        ({"format": None, "value": "x"}, "is not one of"),
        ({"format": ["string"], "value": "x"}, "is not one of"),  # unhashable format
        ({"format": {"a": 1}, "value": "x"}, "is not one of"),
        (12, "'data' must be a string or"),
        (None, "'data' must be a string or"),
        (["x"], "'data' must be a string or"),
    ],
)
def test_bad_data_is_refused(data: Any, fragment: str) -> None:
    raw = value(index=7)
    raw["data"] = data
    message = refused([raw])
    assert fragment in message
    assert "index 7" in message


def test_missing_data_is_refused() -> None:
    assert "'data' must be a string or" in refused([value(data=None)])


def test_data_that_cannot_be_json_is_refused() -> None:
    message = refused([value(data={"format": "string", "value": "a\ud800"})])
    assert "cannot be represented as JSON" in message


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
def test_data_with_non_finite_numbers_is_refused(number: float) -> None:
    # json.loads accepts NaN/Infinity; JSON cannot carry them (orjson would store null)
    site = {"format": "site", "value": {"servers": [], "weight": number}}
    assert "index 1" in refused([value(data=site)])


def test_data_larger_than_64_kib_is_refused() -> None:
    message = refused([value(index=3, data="x" * (MAX_VALUE_BYTES + 1))])
    assert "larger than 64 KiB" in message
    assert "index 3" in message
    site = {"format": "site", "value": {"blob": "x" * MAX_VALUE_BYTES}}
    assert "larger than 64 KiB" in refused([value(data=site)])


def test_data_below_64_kib_is_accepted() -> None:
    assert parse_one(data="x" * (MAX_VALUE_BYTES - 1024)).value == "x" * (MAX_VALUE_BYTES - 1024)


# --- admin values ---


def test_admin_index_sent_as_a_string_is_accepted_and_normalised_to_int() -> None:
    # pyhandle sends {"index": "200"}
    sent = {"handle": "0.NA/88.999", "index": "200", "permissions": "011111110011"}
    parsed = parse_one(type="HS_ADMIN", data={"format": "admin", "value": sent})
    assert parsed.value["index"] == 200
    assert type(parsed.value["index"]) is int
    assert value_json(parsed)["data"]["value"]["index"] == 200


def test_admin_handle_prefix_is_normalised() -> None:
    sent = {"handle": "0.na/88.999.abc", "index": 200, "permissions": "011111110011"}
    parsed = parse_one(type="HS_ADMIN", data={"format": "admin", "value": sent})
    assert parsed.value["handle"] == "0.NA/88.999.ABC"


@pytest.mark.parametrize(
    ("admin", "fragment"),
    [
        ({"index": 200, "permissions": "0111"}, "admin handle must be a string"),
        ({"handle": 5, "index": 200, "permissions": "0111"}, "admin handle must be a string"),
        ({"handle": "no-slash", "index": 200, "permissions": "0111"}, "admin handle is invalid"),
        ({"handle": "0.NA/88.999"}, "admin index"),
        ({"handle": "0.NA/88.999", "index": "abc", "permissions": "0111"}, "admin index"),
        ({"handle": "0.NA/88.999", "index": "-1", "permissions": "0111"}, "admin index"),
        ({"handle": "0.NA/88.999", "index": -1, "permissions": "0111"}, "admin index"),
        ({"handle": "0.NA/88.999", "index": True, "permissions": "0111"}, "admin index"),
        ({"handle": "0.NA/88.999", "index": 2.5, "permissions": "0111"}, "admin index"),
        # str.isdigit() is true for these, int() is not
        ({"handle": "0.NA/88.999", "index": "²", "permissions": "0111"}, "admin index"),
        ({"handle": "0.NA/88.999", "index": "9" * 5000, "permissions": "0111"}, "admin index"),
        # an index must fit the Handle index range (and the JSON encoder)
        ({"handle": "0.NA/88.999", "index": "9" * 30, "permissions": "0111"}, "admin index"),
        ({"handle": "0.NA/88.999", "index": MAX_INDEX + 1, "permissions": "0111"}, "admin index"),
        ({"handle": "0.NA/88.999", "index": 200}, "admin permissions"),
        ({"handle": "0.NA/88.999", "index": 200, "permissions": ""}, "admin permissions"),
        ({"handle": "0.NA/88.999", "index": 200, "permissions": "0" * 13}, "admin permissions"),
        ({"handle": "0.NA/88.999", "index": 200, "permissions": "0121"}, "admin permissions"),
        ({"handle": "0.NA/88.999", "index": 200, "permissions": 111}, "admin permissions"),
    ],
)
def test_bad_admin_values_are_refused(admin: dict[str, Any], fragment: str) -> None:
    message = refused([value(index=100, type="HS_ADMIN", data={"format": "admin", "value": admin})])
    assert fragment in message
    assert "index 100" in message


# --- index ---


@pytest.mark.parametrize("index", [1, 100, 2000, MAX_INDEX])
def test_index_in_range_is_accepted(index: int) -> None:
    assert parse_one(index=index).index == index


@pytest.mark.parametrize(
    "index", [0, -1, MAX_INDEX + 1, 2**63, True, False, "1", 1.0, 1.5, [1], {"i": 1}]
)
def test_index_out_of_range_or_not_an_int_is_refused(index: Any) -> None:
    message = refused([value(index=index)])
    assert "'index' must be a whole number from 1 to 2147483647" in message
    assert "value 1" in message


def test_missing_index_is_refused_naming_the_position() -> None:
    raw = [value(index=1), value(index=None)]
    assert "value 2: 'index' must be" in refused(raw)


def test_duplicate_index_is_refused_naming_the_index() -> None:
    raw = [value(index=5), value(index=6, type="EMAIL", data="a@b.c"), value(index=5)]
    message = refused(raw)
    assert "index 5" in message
    assert "more than one value" in message


def test_values_keep_their_order_and_indexes() -> None:
    parsed = parse_values([value(index=3), value(index=1), value(index=2000)])
    assert [v.index for v in parsed] == [3, 1, 2000]


# --- number of values ---


def test_exactly_1000_values_are_accepted() -> None:
    raw = [value(index=i) for i in range(1, MAX_VALUES + 1)]
    assert len(parse_values(raw)) == 1000


def test_more_than_1000_values_are_refused() -> None:
    raw = [value(index=i) for i in range(1, MAX_VALUES + 2)]
    message = refused(raw)
    assert "1001 values" in message
    assert "at most 1000" in message


def test_empty_list_is_no_values() -> None:
    assert parse_values([]) == []


# --- type ---


@pytest.mark.parametrize("vtype", ["URL", "EMAIL", "HS_ADMIN", "EMAIL.work", "生产日期"])
def test_type_is_accepted(vtype: str) -> None:
    assert parse_one(type=vtype).type == vtype


def test_type_of_128_characters_is_accepted() -> None:
    assert parse_one(type="T" * MAX_TYPE_LENGTH).type == "T" * MAX_TYPE_LENGTH


@pytest.mark.parametrize(
    ("vtype", "fragment"),
    [
        ("", "'type' must be a text of 1 to 128"),
        ("T" * (MAX_TYPE_LENGTH + 1), "'type' must be a text of 1 to 128"),
        (5, "'type' must be a text"),
        (["URL"], "'type' must be a text"),
        ("A B", "spaces or control characters"),
        ("A\tB", "spaces or control characters"),
        ("A\x00B", "spaces or control characters"),
        ("A\x85B", "spaces or control characters"),
        ("A\x7fB", "spaces or control characters"),  # DEL is a control character
    ],
)
def test_bad_type_is_refused(vtype: Any, fragment: str) -> None:
    message = refused([value(index=9, type=vtype)])
    assert fragment in message
    assert "index 9" in message


def test_type_missing_is_refused() -> None:
    assert "'type' must be a text" in refused([value(type=None)])


def test_type_with_lone_surrogate_is_refused() -> None:
    # json.loads (what the web layer uses) yields lone surrogates from "\ud800" escapes;
    # such a type could never be written out as UTF-8 JSON again.
    with pytest.raises(InvalidValue):
        parse_values([value(type="A\ud800")])


# --- ttl ---


def test_ttl_defaults_to_86400() -> None:
    assert DEFAULT_TTL == 86400
    assert parse_one().ttl == 86400


@pytest.mark.parametrize("ttl", [0, 1, 3600, MAX_TTL])
def test_ttl_in_range_is_accepted(ttl: int) -> None:
    assert parse_one(ttl=ttl).ttl == ttl


@pytest.mark.parametrize("ttl", [-1, MAX_TTL + 1, True, "86400", 1.5, 60.0])
def test_ttl_out_of_range_or_not_an_int_is_refused(ttl: Any) -> None:
    message = refused([value(index=4, ttl=ttl)])
    assert "'ttl' must be a whole number of seconds from 0 to 2147483647" in message
    assert "index 4" in message


# --- permissions ---


def test_permissions_default_to_1110() -> None:
    parsed = parse_one()
    assert parsed.permissions == DEFAULT_PERMISSIONS == "1110"
    assert parsed.public_read
    assert parsed.admin_read


@pytest.mark.parametrize("permissions", ["1110", "0000", "1111", "1100", "0010"])
def test_permissions_of_four_binary_digits_are_accepted(permissions: str) -> None:
    assert parse_one(permissions=permissions).permissions == permissions


@pytest.mark.parametrize("permissions", ["111", "11100", "1120", "abcd", "", 1110, ["1110"], True])
def test_bad_permissions_are_refused(permissions: Any) -> None:
    message = refused([value(index=2, permissions=permissions)])
    assert "'permissions' must be 4 digits 0/1" in message
    assert "index 2" in message


# --- references ---


def test_references_are_parsed_and_their_handles_normalised() -> None:
    parsed = parse_one(
        references=[{"handle": "88.999.abc/Part-1", "index": 2}, {"handle": "88.999.1/x"}]
    )
    assert parsed.references == (Reference("88.999.ABC/Part-1", 2), Reference("88.999.1/x", 0))


def test_no_references_is_an_empty_tuple() -> None:
    assert parse_one().references == ()
    assert parse_one(references=[]).references == ()


@pytest.mark.parametrize(
    ("references", "fragment"),
    [
        ({"handle": "88.999.1/x", "index": 1}, "'references' must be a list"),
        ("88.999.1/x", "'references' must be a list"),
        (["88.999.1/x"], "each reference must be"),
        ([{"index": 1}], "reference handle must be a string"),
        ([{"handle": 5, "index": 1}], "reference handle must be a string"),
        ([{"handle": "no-slash", "index": 1}], "reference handle is invalid"),
        ([{"handle": "88.999.1/a\x00", "index": 1}], "U+0000"),
        ([{"handle": "88.999.1/x", "index": -1}], "reference index must be"),
        ([{"handle": "88.999.1/x", "index": "1"}], "reference index must be"),
        ([{"handle": "88.999.1/x", "index": True}], "reference index must be"),
        ([{"handle": "88.999.1/x", "index": MAX_INDEX + 1}], "reference index must be"),
        ([{"handle": "88.999.1/x", "index": 2**70}], "reference index must be"),
    ],
)
def test_bad_references_are_refused(references: Any, fragment: str) -> None:
    message = refused([value(index=8, references=references)])
    assert fragment in message
    assert "index 8" in message


# --- the value list is validated as a whole ---


def test_non_object_value_is_refused_naming_its_position() -> None:
    assert "value 2 must be a JSON object" in refused([value(index=1), "URL"])


def test_first_problem_names_its_value() -> None:
    raw = [value(index=1), value(index=2, ttl=-5)]
    assert "value with index 2" in refused(raw)


# --- request_values: the shapes of a PUT body ---


def test_request_values_accepts_a_list() -> None:
    body = [value(index=1), value(index=2)]
    assert request_values(body) == body


def test_request_values_accepts_an_object_with_values() -> None:
    values = [value(index=1)]
    assert request_values({"values": values}) == values
    assert request_values({"handle": "88.999.1/X", "values": values}) == values


def test_request_values_accepts_a_single_value() -> None:
    one = value(index=1)
    assert request_values(one) == [one]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"values": {"index": 1}}, "'values' must be a JSON array"),
        ({"values": None}, "'values' must be a JSON array"),
        ({"handle": "88.999.1/X"}, "must be a JSON array of handle values or an object"),
        ({}, "must be a JSON array of handle values or an object"),
        ("values", "must be a JSON array of handle values or an object"),
        (None, "must be a JSON array of handle values or an object"),
        (12, "must be a JSON array of handle values or an object"),
    ],
)
def test_request_values_refuses_other_bodies(body: Any, fragment: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        request_values(body)
    assert fragment in caught.value.message


# --- value_json and values_from_stored ---


def test_value_json_leaves_out_default_permissions_and_empty_references() -> None:
    out = value_json(parse_one())
    assert "permissions" not in out
    assert "references" not in out
    assert out == {
        "index": 1,
        "type": "URL",
        "data": {"format": "string", "value": "https://example.com/p/1"},
        "ttl": 86400,
        "timestamp": "",
    }


def test_value_json_carries_the_ttl_as_handle_does() -> None:
    # Handle.Net REST always sends ttl; values_from_stored needs it back.
    assert value_json(parse_one())["ttl"] == DEFAULT_TTL
    assert value_json(parse_one(ttl=0))["ttl"] == 0


def test_value_json_includes_non_default_permissions_and_references() -> None:
    parsed = parse_one(permissions="1100", references=[{"handle": "88.999.1/y", "index": 3}])
    out = value_json(parsed)
    assert out["permissions"] == "1100"
    assert out["references"] == [{"handle": "88.999.1/y", "index": 3}]


def test_value_json_round_trips_through_values_from_stored() -> None:
    parsed = parse_values(
        [
            value(index=1),
            value(index=2, type="EMAIL", data="ops@example.com", ttl=0, permissions="1100"),
            value(index=3, type="HS_SITE", data={"format": "site", "value": {"servers": []}}),
            value(index=100, type="HS_ADMIN", data={"format": "admin", "value": dict(ADMIN)}),
            value(index=2001, type="batch", data={"format": "hex", "value": "ff00"}),
            value(index=2002, type="img", data={"format": "base64", "value": "aGk="}),
            value(index=2003, type="part", references=[{"handle": "88.999.1/p", "index": 1}]),
        ]
    )
    stamped = [HandleValue(**{**_fields(v), "timestamp": "2026-01-02T03:04:05Z"}) for v in parsed]
    for values in (parsed, stamped):
        stored = orjson.loads(orjson.dumps([value_json(v) for v in values]))
        assert values_from_stored(stored) == tuple(values)


def _fields(v: HandleValue) -> dict[str, Any]:
    return {name: getattr(v, name) for name in HandleValue.__slots__}


def test_same_content_ignores_only_the_timestamp() -> None:
    a = parse_one()
    b = HandleValue(**{**_fields(a), "timestamp": "2026-01-02T03:04:05Z"})
    c = HandleValue(**{**_fields(a), "ttl": 5})
    assert a.same_content(b)
    assert not a.same_content(c)


# --- properties ---

ANY_CHARACTER = st.characters(exclude_categories=())  # lone surrogates too: json.loads yields them
KEYS = st.one_of(
    st.sampled_from(
        [
            "values",
            "handle",
            "index",
            "type",
            "data",
            "format",
            "value",
            "ttl",
            "timestamp",
            "permissions",
            "references",
        ]
    ),
    st.text(alphabet=ANY_CHARACTER, max_size=8),
)
WORDS = st.sampled_from(
    ["string", "base64", "hex", "admin", "site", "URL", "1110", "0.NA/88.999", "200", "²", "é"]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(alphabet=ANY_CHARACTER, max_size=20),
    WORDS,
)
JSON = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(KEYS, children, max_size=6)
    ),
    max_leaves=25,
)


def _either(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(good, JSON)


ADMIN_LIKE = st.fixed_dictionaries(
    {
        "handle": _either(st.sampled_from(["0.NA/88.999", "0.na/88.abc", "88.999.1/ADMIN", "x"])),
        "index": _either(
            st.one_of(st.integers(-5, 2**40), st.integers(0, 2**70).map(str), st.just("²"))
        ),
        "permissions": _either(st.text(alphabet="01", max_size=13)),
    }
)
DATA_LIKE = st.one_of(
    st.text(alphabet=ANY_CHARACTER, max_size=20),
    JSON,
    st.fixed_dictionaries(
        {"format": _either(WORDS), "value": st.one_of(JSON, ADMIN_LIKE)},
        optional={"extra": JSON},
    ),
)
REFERENCES_LIKE = _either(
    st.lists(
        st.fixed_dictionaries(
            {
                "handle": _either(st.sampled_from(["88.999.1/x", "88.abc/Y", "bad"])),
                "index": _either(st.integers(-5, 2**70)),
            }
        ),
        max_size=3,
    )
)
VALUE_LIKE = st.fixed_dictionaries(
    {
        "index": _either(st.integers(-2, MAX_INDEX + 2)),
        "type": _either(st.text(alphabet=ANY_CHARACTER, max_size=10)),
        "data": DATA_LIKE,
    },
    optional={
        "ttl": _either(st.integers(-2, MAX_TTL + 2)),
        "permissions": _either(st.text(alphabet="0123", max_size=5)),
        "references": REFERENCES_LIKE,
        "timestamp": JSON,
    },
)
BODIES = st.one_of(
    JSON,
    st.lists(st.one_of(VALUE_LIKE, JSON), max_size=4),
    st.fixed_dictionaries({"values": st.lists(VALUE_LIKE, max_size=4)}),
    VALUE_LIKE,
)


@settings(deadline=None)
@given(BODIES)
def test_parse_values_accepts_only_well_formed_values_and_names_what_it_refuses(
    body: Any,
) -> None:
    # Anything else than InvalidValue escaping would be a 500 for the client.
    try:
        parsed = parse_values(request_values(body))
    except InvalidValue as exc:
        refused = exc.message
    else:
        refused = None
    if refused is not None:
        assert refused.strip()
        return
    indexes = [value.index for value in parsed]
    assert len(set(indexes)) == len(indexes)
    assert all(0 < index <= MAX_INDEX for index in indexes)
    assert all(value.type and not any(ch.isspace() for ch in value.type) for value in parsed)
    assert all(len(value.permissions) == 4 for value in parsed)


# values that are valid in most fields, so the round-trip property sees many accepted ones
GOOD_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10)),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=10,
)
MOSTLY_VALID = st.fixed_dictionaries(
    {
        "index": st.integers(1, MAX_INDEX),
        "type": st.one_of(st.sampled_from(["URL", "EMAIL", "HS_ADMIN"]), st.text(max_size=10)),
        "data": st.one_of(
            st.text(alphabet=ANY_CHARACTER, max_size=10),
            st.fixed_dictionaries(
                {
                    "format": st.just("admin"),
                    "value": st.fixed_dictionaries(
                        {
                            "handle": st.sampled_from(["0.NA/88.999", "0.na/88.abc"]),
                            "index": st.one_of(
                                st.integers(0, 2**70), st.integers(0, 2**70).map(str)
                            ),
                            "permissions": st.just("011111110011"),
                        }
                    ),
                }
            ),
            st.fixed_dictionaries(
                {"format": st.just("site"), "value": st.dictionaries(st.text(), GOOD_JSON)}
            ),
        ),
    },
    optional={
        "ttl": st.integers(0, MAX_TTL),
        "permissions": st.text(alphabet="01", min_size=4, max_size=4),
        "references": st.lists(
            st.fixed_dictionaries(
                {"handle": st.just("88.999.1/x"), "index": st.integers(0, 2**70)}
            ),
            max_size=2,
        ),
    },
)


@settings(deadline=None)
@given(st.lists(MOSTLY_VALID, max_size=3, unique_by=lambda v: v["index"]))
def test_accepted_values_can_be_written_as_json_and_read_back(body: Any) -> None:
    try:
        parsed = parse_values(request_values(copy.deepcopy(body)))
    except InvalidValue:
        return
    stored = orjson.loads(orjson.dumps([value_json(v) for v in parsed]))
    assert values_from_stored(stored) == tuple(parsed)
