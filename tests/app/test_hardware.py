"""Hardware ids: validated per kind and written one canonical way."""

from __future__ import annotations

import pytest

from app.errors import InvalidHardwareId
from app.registry.devices import candidates, device_suffix, normalise


@pytest.mark.parametrize(
    ("kind", "given", "canonical"),
    [
        ("mac", "a4:c1:38:0b:2f:1e", "A4C1380B2F1E"),
        ("mac", "A4-C1-38-0B-2F-1E", "A4C1380B2F1E"),
        ("mac", "a4c1.380b.2f1e", "A4C1380B2F1E"),
        ("deveui", "a84041000181c2f7", "A84041000181C2F7"),
        ("deveui", "A8:40:41:00:01:81:C2:F7", "A84041000181C2F7"),
        ("imei", "356938035643809", "356938035643809"),
        ("imei", " 861234056789012 ", "861234056789012"),
        ("serial", "SN-0001.b_2", "SN-0001.b_2"),
    ],
)
def test_canonical_forms(kind: str, given: str, canonical: str) -> None:
    assert normalise(kind, given) == canonical


@pytest.mark.parametrize(
    ("kind", "given", "says"),
    [
        ("mac", "a4:c1:38:0b:2f", "12 hex digits"),
        ("mac", "g4:c1:38:0b:2f:1e", "12 hex digits"),
        ("deveui", "a84041000181c2", "16 hex digits"),
        ("imei", "356938035643808", "check digit"),
        ("imei", "35693803564380", "exactly 15 digits"),
        ("imei", "35693803564380x", "exactly 15 digits"),
        ("serial", "", "1 to 64"),
        ("serial", "has space", "1 to 64"),
        ("serial", "x" * 65, "1 to 64"),
        ("uuid", "abc", "not one of serial, mac, imei, deveui"),
    ],
)
def test_bad_ids_say_what_is_wrong(kind: str, given: str, says: str) -> None:
    with pytest.raises(InvalidHardwareId, match=says):
        normalise(kind, given)


def test_heartbeats_find_a_device_under_any_of_its_forms() -> None:
    assert "A4C1380B2F1E" in candidates("a4:c1:38:0b:2f:1e")
    assert candidates("SN 1") == []
    assert device_suffix("mac", "A4C1380B2F1E") == "DEV-mac-A4C1380B2F1E"
