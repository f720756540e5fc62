"""The Handle protocol codec: frames, bodies and values, and what it refuses."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resolver.handle_protocol import bodies
from resolver.handle_protocol.body import Reader, Site, encode_site, read_values
from resolver.handle_protocol.message import (
    ENVELOPE_SIZE,
    FLAG_REQUEST_DIGEST,
    OC_RESOLUTION,
    Envelope,
    MalformedMessage,
    Message,
    read_envelope,
    read_message,
    request_digest,
    udp_datagrams,
)
from resolver.values import HandleValue, Reference, parse_values

MAX = 1024 * 1024


def test_a_message_reads_back_as_written() -> None:
    message = Message(OC_RESOLUTION, b"body", response_code=1, flags=0x19000000, expiration=42)
    again = read_message(message.pack())
    assert again == message
    envelope = Envelope(7, 99, len(message.pack()))
    assert read_envelope(envelope.pack(), max_length=MAX) == envelope


def test_the_sdk_s_lookup_request_decodes() -> None:
    # The anonymous lookup of 88.1000.1/ADMIN as the ID-SDK 2.0.3 sends it (flags 0).
    body = bytes.fromhex("0000000f38382e313030302e312f41444d494e0000000000000000")
    assert bodies.Query.read(body) == bodies.Query("88.1000.1/ADMIN")


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"\x02\x0a", "20 bytes"),
        (Envelope(0, 1, 10).pack(), "shorter than a message header"),
        (Envelope(0, 1, MAX + 1).pack(), "exceeds the limit"),
    ],
)
def test_envelopes_that_cannot_be_one_are_refused(data: bytes, why: str) -> None:
    with pytest.raises(MalformedMessage, match=why):
        read_envelope(data, max_length=MAX)


def test_a_body_length_that_lies_is_refused() -> None:
    packed = bytearray(Message(OC_RESOLUTION, b"abcd").pack())
    struct.pack_into(">I", packed, 20, 4000)  # the header's body length
    with pytest.raises(MalformedMessage, match="runs past the end"):
        read_message(bytes(packed))


def test_trailing_bytes_after_the_credential_section_are_refused() -> None:
    with pytest.raises(MalformedMessage, match="credential section"):
        read_message(Message(OC_RESOLUTION, b"x").pack() + b"junk")


def test_a_string_length_that_lies_is_refused() -> None:
    with pytest.raises(MalformedMessage, match="runs past the end"):
        bodies.Query.read(struct.pack(">i", 2**31 - 1) + b"88.1/x")


def test_a_count_that_cannot_fit_allocates_nothing() -> None:
    # A handle, then "a billion indexes" in a 12-byte body.
    body = struct.pack(">i", 1) + b"x" + struct.pack(">i", 10**9) + b"\0\0\0\0"
    with pytest.raises(MalformedMessage, match="cannot fit"):
        bodies.Query.read(body)


@given(st.binary(max_size=300))
def test_garbage_is_a_malformed_message_or_a_message(data: bytes) -> None:
    try:
        message = read_message(data)
    except MalformedMessage:
        return
    for read in (bodies.Query.read, bodies.read_values_request, bodies.ChallengeAnswer.read):
        with contextlib.suppress(MalformedMessage):
            read(message.body)


def test_values_round_trip_through_the_wire_form() -> None:
    values = [
        HandleValue(1, "URL", "string", "https://example.com/p/1", ttl=600, permissions="1110"),
        HandleValue(2, "SECRET", "string", "s", permissions="1100"),
        HandleValue(3, "BLOB", "base64", "AP8=", references=(Reference("88.1/other", 1),)),
        HandleValue(
            100,
            "HS_ADMIN",
            "admin",
            {"handle": "88.1/ADMIN", "index": 300, "permissions": "011111110011"},
        ),
    ]
    handle, raw = bodies.read_records(bodies.pack_records("88.1/x", values))
    assert handle == "88.1/x"
    again = parse_values(raw)
    assert [(v.index, v.type, v.format, v.value, v.ttl, v.permissions) for v in again] == [
        (v.index, v.type, v.format, v.value, v.ttl, v.permissions) for v in values
    ]
    assert again[2].references == (Reference("88.1/other", 1),)


def test_an_sdk_value_with_its_default_index_is_refused_by_the_value_rules() -> None:
    sdk_value = HandleValue(1, "URL", "string", "u")
    raw = bodies.read_values_request(bodies.pack_values_request("88.1/x", [sdk_value]))[1]
    raw[0]["index"] = -1
    with pytest.raises(Exception, match="'index' must be a whole number"):
        parse_values(raw)


def test_a_digest_covers_the_request_header_and_body() -> None:
    request = Message(OC_RESOLUTION, b"abc", flags=FLAG_REQUEST_DIGEST, expiration=5)
    digest = request_digest(request)
    assert digest[0] == 3
    assert len(digest) == 33
    assert digest != request_digest(Message(OC_RESOLUTION, b"abd", flags=FLAG_REQUEST_DIGEST))


def test_a_large_answer_is_cut_into_512_byte_datagrams() -> None:
    message = bytes(1200)
    datagrams = udp_datagrams(0, 77, message)
    assert [len(d) for d in datagrams] == [512, 512, 20 + 1200 - 984]
    envelopes = [read_envelope(d, max_length=MAX) for d in datagrams]
    assert [e.sequence for e in envelopes] == [0, 1, 2]
    assert {e.length for e in envelopes} == {1200}
    assert b"".join(d[ENVELOPE_SIZE:] for d in datagrams) == message


def test_the_site_record_names_tcp_first() -> None:
    site = encode_site(Site(bytes(12) + bytes([127, 0, 0, 1]), 2641, "idnode 88.999"))
    reader = Reader(site)
    assert reader.int2() == 1
    reader.byte(), reader.byte(), reader.int2(), reader.byte(), reader.byte()
    reader.text()
    assert reader.int4() == 1
    assert (reader.text(), reader.text()) == ("desc", "idnode 88.999")
    assert reader.int4() == 1
    assert reader.int4() == 1
    assert reader._take(16, "address")[-4:] == bytes([127, 0, 0, 1])
    reader.bytes_()
    assert reader.int4() == 2
    assert (reader.byte(), reader.byte(), reader.int4()) == (3, 1, 2641)  # both, TCP
    assert (reader.byte(), reader.byte(), reader.int4()) == (3, 0, 2641)  # both, UDP
    reader.end()


def test_values_with_no_room_for_their_count_are_refused() -> None:
    with pytest.raises(MalformedMessage):
        read_values(Reader(struct.pack(">i", 5)))
