"""Hardware ids: each kind validated and written one canonical way.

The canonical form is what the ``devices`` table and the device's identifier carry, so the
same adapter reported as ``a4:c1:38:0b:2f:1e`` or ``A4-C1-38-0B-2F-1E`` is one device.
"""

from __future__ import annotations

import re

from app.errors import InvalidHardwareId

KINDS = ("serial", "mac", "imei", "deveui")
_HEX_PAIRS = re.compile(r"[0-9A-Fa-f]{2}([:\-.]?[0-9A-Fa-f]{2})*")
_SERIAL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def normalise(kind: str, hardware_id: str) -> str:
    """The canonical hardware id, or ``InvalidHardwareId`` saying what is wrong.

    - serial: 1-64 letters, digits, ``.``, ``_``, ``-`` (case kept: serials are case-sensitive)
    - mac: 12 hex digits, separators ``:``, ``-`` or ``.`` allowed -> ``A4C1380B2F1E``
    - imei: 15 digits whose last is the Luhn check digit
    - deveui: 16 hex digits (separators allowed) -> ``A84041000181C2F7``
    """
    if kind not in KINDS:
        raise InvalidHardwareId(f"hardwareIdType {kind!r} is not one of {', '.join(KINDS)}")
    text = hardware_id.strip() if isinstance(hardware_id, str) else ""
    if kind == "serial":
        if not _SERIAL.fullmatch(text):
            raise InvalidHardwareId(
                f"serial {hardware_id!r} must be 1 to 64 letters, digits, '.', '_' or '-'"
            )
        return text
    if kind == "imei":
        if not (len(text) == 15 and text.isascii() and text.isdigit()):
            raise InvalidHardwareId(f"IMEI {hardware_id!r} must be exactly 15 digits")
        if not _luhn_valid(text):
            raise InvalidHardwareId(f"IMEI {hardware_id!r} has a wrong check digit")
        return text
    digits = 12 if kind == "mac" else 16
    name = "MAC address" if kind == "mac" else "DevEUI"
    compact = re.sub(r"[:\-.]", "", text)
    if not _HEX_PAIRS.fullmatch(text) or len(compact) != digits:
        raise InvalidHardwareId(f"{name} {hardware_id!r} must be {digits} hex digits")
    return compact.upper()


def _luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def candidates(hardware_id: str) -> list[str]:
    """Every canonical form ``hardware_id`` could have, for messages that do not say its kind
    (heartbeats name the device by its hardware id alone)."""
    found = []
    for kind in KINDS:
        try:
            form = normalise(kind, hardware_id)
        except InvalidHardwareId:
            continue
        if form not in found:
            found.append(form)
    return found


def device_suffix(kind: str, canonical: str) -> str:
    """The identifier suffix of a device: deterministic, so a replayed or racing registration
    names the same identifier (``DEV-mac-A4C1380B2F1E``)."""
    return f"DEV-{kind}-{canonical}"
