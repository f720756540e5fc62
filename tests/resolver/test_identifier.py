"""Identifier grammar (docs/domain.md section 2): parse_handle and parse_prefix."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from resolver.errors import InvalidHandle
from resolver.identifier import (
    MAX_HANDLE_LENGTH,
    MAX_PREFIX_LENGTH,
    PREFIX_RECORD_PREFIX,
    Handle,
    parse_handle,
    parse_prefix,
)

# --- examples: what is accepted, and how it is normalised ---


@pytest.mark.parametrize(
    ("text", "prefix", "suffix"),
    [
        ("88.999.1/MILK-2026-000123", "88.999.1", "MILK-2026-000123"),
        # the prefix is case-insensitive: ASCII is upper-cased
        ("88.999.abc/X", "88.999.ABC", "X"),
        ("88.999.Ab_c-d/x", "88.999.AB_C-D", "x"),
        ("86.hdl/ok", "86.HDL", "ok"),
        # the suffix is case-sensitive: kept exactly as sent
        ("88.999.1/milk-Batch", "88.999.1", "milk-Batch"),
        ("88.999.1/abc", "88.999.1", "abc"),
        # the suffix may hold '/', ':' and '.' (split at the FIRST '/')
        ("88.999.1/a/b/c", "88.999.1", "a/b/c"),
        ("88.999.1/urn:x:y", "88.999.1", "urn:x:y"),
        ("88.999.1/v1.2.3", "88.999.1", "v1.2.3"),
        ("88.999.1/./:", "88.999.1", "./:"),
        ("88.999.1//", "88.999.1", "/"),
        # printable non-ASCII and spaces are fine in a suffix
        ("88.999.1/牛奶 批次 é", "88.999.1", "牛奶 批次 é"),
        # a single-segment prefix, leading zeros kept (segments are strings)
        ("88/X", "88", "X"),
        ("88.999.0042/X", "88.999.0042", "X"),
        # reserved suffixes are ordinary suffixes to the grammar
        ("88.999.1/ADMIN", "88.999.1", "ADMIN"),
        ("88.999.1/META_milk", "88.999.1", "META_milk"),
    ],
)
def test_parse_handle_accepts_and_normalises(text: str, prefix: str, suffix: str) -> None:
    handle = parse_handle(text)
    assert handle == Handle(prefix, suffix)
    assert str(handle) == f"{prefix}/{suffix}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # 0.NA/<prefix> names the record of a prefix: its suffix is a prefix, normalised like one
        ("0.NA/88.999.1", "0.NA/88.999.1"),
        ("0.na/88.999.abc", "0.NA/88.999.ABC"),
        ("0.Na/86.hdl", "0.NA/86.HDL"),
        ("0.NA/88", "0.NA/88"),
    ],
)
def test_prefix_record_suffix_is_normalised_like_a_prefix(text: str, expected: str) -> None:
    handle = parse_handle(text)
    assert handle.prefix == PREFIX_RECORD_PREFIX
    assert str(handle) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("0.NA/88.999.1/X", "'/'"),  # a prefix cannot hold '/'
        ("0.NA/88..1", "empty segment"),
        ("0.NA/88.999:1", "':'"),
        ("0.NA/" + "9" * (MAX_PREFIX_LENGTH + 1), "65 characters"),
    ],
)
def test_prefix_record_suffix_must_be_a_valid_prefix(text: str, fragment: str) -> None:
    with pytest.raises(InvalidHandle) as caught:
        parse_handle(text)
    assert fragment in caught.value.message
    assert "0.NA" in caught.value.message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("88", "88"),
        ("88.999", "88.999"),
        ("88.999.abc", "88.999.ABC"),
        ("88.999.0042", "88.999.0042"),
        ("a-b.c_d", "A-B.C_D"),
    ],
)
def test_parse_prefix_accepts_and_upper_cases(text: str, expected: str) -> None:
    assert parse_prefix(text) == expected


# --- length limits, exactly at and one past ---


def _prefix_of_length(n: int) -> str:
    """A valid prefix of exactly ``n`` characters: ``88.`` then a run of 9s."""
    return "88." + "9" * (n - 3)


def test_prefix_of_exactly_64_characters_is_accepted() -> None:
    prefix = _prefix_of_length(MAX_PREFIX_LENGTH)
    assert len(prefix) == 64
    assert parse_prefix(prefix) == prefix
    assert parse_handle(prefix + "/X") == Handle(prefix, "X")


def test_prefix_of_65_characters_is_refused() -> None:
    prefix = _prefix_of_length(MAX_PREFIX_LENGTH + 1)
    assert len(prefix) == 65
    with pytest.raises(InvalidHandle) as caught:
        parse_prefix(prefix)
    assert "65 characters" in caught.value.message
    assert "at most 64" in caught.value.message
    with pytest.raises(InvalidHandle, match="at most 64"):
        parse_handle(prefix + "/X")


def test_whole_identifier_of_exactly_255_characters_is_accepted() -> None:
    text = "88.999.1/" + "s" * (MAX_HANDLE_LENGTH - len("88.999.1/"))
    assert len(text) == 255
    assert str(parse_handle(text)) == text


def test_whole_identifier_of_256_characters_is_refused() -> None:
    text = "88.999.1/" + "s" * (MAX_HANDLE_LENGTH + 1 - len("88.999.1/"))
    assert len(text) == 256
    with pytest.raises(InvalidHandle) as caught:
        parse_handle(text)
    assert "256 characters" in caught.value.message
    assert "at most 255" in caught.value.message


def test_length_limit_counts_characters_not_utf8_bytes() -> None:
    # 255 characters, but far more than 255 bytes of UTF-8
    text = "88.999.1/" + "牛" * (MAX_HANDLE_LENGTH - len("88.999.1/"))
    assert len(text) == 255
    assert len(text.encode()) > 255
    assert str(parse_handle(text)) == text


# --- refusals: each says what is wrong ---


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        # missing '/'
        ("88.999.1", "no '/'"),
        ("88.999.1MILK", "no '/'"),
        ("", "no '/'"),
        # empty prefix / suffix / segment
        ("/X", "prefix is empty"),
        ("88.999.1/", "empty suffix"),
        ("/", "prefix is empty"),
        ("88..1/X", "empty segment"),
        (".88/X", "empty segment"),
        ("88.999./X", "empty segment"),
        # bad prefix characters
        ("88.999 1/X", "' '"),
        ("88.999:1/X", "':'"),
        ("88.9é9/X", "'é'"),
        ("88.999+1/X", "'+'"),
        ("８８/X", "'８'"),  # full-width digits are not ASCII digits
    ],
)
def test_parse_handle_refuses_with_a_message(text: str, fragment: str) -> None:
    with pytest.raises(InvalidHandle) as caught:
        parse_handle(text)
    assert fragment in caught.value.message
    assert caught.value.response_code == 102


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "prefix is empty"),
        ("88..1", "empty segment"),
        ("88.", "empty segment"),
        ("88/1", "'/'"),
        ("88.9 9", "' '"),
        ("88.9\x009", "'\\x00'"),
    ],
)
def test_parse_prefix_refuses_with_a_message(text: str, fragment: str) -> None:
    with pytest.raises(InvalidHandle) as caught:
        parse_prefix(text)
    assert fragment in caught.value.message


def test_bad_prefix_character_message_says_what_is_allowed() -> None:
    with pytest.raises(InvalidHandle) as caught:
        parse_handle("88.9$9/X")
    message = caught.value.message
    assert "'9$9'" in message  # the segment
    assert "'$'" in message  # the offending character
    assert "letters" in message
    assert "digits" in message


@pytest.mark.parametrize("code_point", [0x0000, 0x001F, 0x007F, 0x0085, 0x000A, 0x0009])
def test_control_characters_in_suffix_are_refused_naming_the_code_point(code_point: int) -> None:
    text = f"88.999.1/ab{chr(code_point)}cd"
    with pytest.raises(InvalidHandle) as caught:
        parse_handle(text)
    assert f"U+{code_point:04X}" in caught.value.message
    assert "control character" in caught.value.message
    assert "position 3" in caught.value.message


@pytest.mark.parametrize("code_point", [0x0000, 0x001F, 0x007F, 0x0085])
def test_control_characters_in_prefix_are_refused(code_point: int) -> None:
    with pytest.raises(InvalidHandle) as caught:
        parse_handle(f"88.9{chr(code_point)}9/X")
    assert repr(chr(code_point)) in caught.value.message


@pytest.mark.parametrize("surrogate", [chr(0xD800), chr(0xDC80), chr(0xDFFF)])
def test_lone_surrogate_in_suffix_is_refused(surrogate: str) -> None:
    with pytest.raises(InvalidHandle) as caught:
        parse_handle(f"88.999.1/a{surrogate}")
    assert "surrogate" in caught.value.message
    assert "at 2" in caught.value.message  # its position


def test_lone_surrogate_in_prefix_is_refused() -> None:
    with pytest.raises(InvalidHandle, match="contains"):
        parse_handle("88.\ud800/X")


@pytest.mark.parametrize("value", [None, 88, 8.8, b"88.999.1/X", ["88.999.1/X"], object()])
def test_non_text_is_refused(value: Any) -> None:
    with pytest.raises(InvalidHandle, match="must be a string"):
        parse_handle(value)
    with pytest.raises(InvalidHandle, match="must be a string"):
        parse_prefix(value)


# --- properties ---

ANY_CHARACTER = st.characters(exclude_categories=())  # includes Cc and lone surrogates (Cs)
INTERESTING = st.sampled_from(
    ["/", ".", ":", "0.NA", "0.na", "88", "999", "a", "Z", "_", "-", "\x00", "\x85", "\ud800"]
)
ANY_TEXT = st.one_of(
    st.text(),
    st.text(alphabet=ANY_CHARACTER),
    st.lists(st.one_of(INTERESTING, st.text(alphabet=ANY_CHARACTER, max_size=3))).map("".join),
    st.text(alphabet=ANY_CHARACTER, min_size=240, max_size=300),
)

SEGMENT = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


@st.composite
def valid_prefixes(draw: st.DrawFn) -> str:
    segments = draw(st.lists(SEGMENT.filter(bool), min_size=1, max_size=6))
    prefix = ".".join(segments)
    assume(len(prefix) <= MAX_PREFIX_LENGTH)
    assume(prefix.upper() != PREFIX_RECORD_PREFIX)
    return prefix


SUFFIX_CHARACTER = st.characters(exclude_categories=("Cc", "Cs"))


@st.composite
def valid_handles(draw: st.DrawFn) -> tuple[str, str]:
    prefix = draw(valid_prefixes())
    room = MAX_HANDLE_LENGTH - len(prefix) - 1
    suffix = draw(
        st.text(
            alphabet=st.one_of(SUFFIX_CHARACTER, st.sampled_from("/:.")),
            min_size=1,
            max_size=room,
        )
    )
    return prefix, suffix


@settings(deadline=None)
@given(st.one_of(ANY_TEXT, st.from_type(object), st.binary()))
def test_parse_handle_only_ever_returns_a_handle_or_raises_invalid_handle(value: Any) -> None:
    result: Handle | InvalidHandle
    try:
        result = parse_handle(value)
    except InvalidHandle as exc:
        result = exc
    if isinstance(result, InvalidHandle):
        assert isinstance(result.message, str)
        assert result.message
    else:
        assert isinstance(result, Handle)


@settings(deadline=None)
@given(st.one_of(ANY_TEXT, st.from_type(object)))
def test_parse_prefix_only_ever_returns_text_or_raises_invalid_handle(value: Any) -> None:
    result: str | InvalidHandle
    try:
        result = parse_prefix(value)
    except InvalidHandle as exc:
        result = exc
    if isinstance(result, InvalidHandle):
        assert result.message
    else:
        assert isinstance(result, str)
        assert result == result.upper()


@settings(deadline=None)
@given(st.one_of(ANY_TEXT, valid_handles().map("/".join)))
def test_parsing_is_idempotent(text: str) -> None:
    try:
        handle = parse_handle(text)
    except InvalidHandle:
        return  # only valid identifiers have a normal form to compare
    again = parse_handle(str(handle))
    assert again == handle
    assert str(again) == str(handle)


@settings(deadline=None)
@given(valid_handles())
def test_valid_handles_round_trip_with_prefix_upper_cased(parts: tuple[str, str]) -> None:
    prefix, suffix = parts
    handle = parse_handle(f"{prefix}/{suffix}")
    assert handle.prefix == prefix.upper()
    assert handle.suffix == suffix
    assert str(handle) == f"{prefix.upper()}/{suffix}"


@settings(deadline=None)
@given(valid_prefixes())
def test_prefix_record_round_trips_with_both_parts_upper_cased(prefix: str) -> None:
    handle = parse_handle(f"0.na/{prefix}")
    assert str(handle) == f"0.NA/{prefix.upper()}"


@settings(deadline=None)
@given(st.text(alphabet=SUFFIX_CHARACTER, min_size=1, max_size=200))
def test_suffix_case_is_never_changed(suffix: str) -> None:
    handle = parse_handle("88.999.1/" + suffix)
    assert handle.suffix == suffix
