"""China Mobile OneNET HTTP push: URL verification and signed data / online-offline pushes.

Signature = base64(md5(token + nonce + msg)), where ``msg`` is the text of the ``msg`` member
exactly as it appears in the body: it is checked against the raw text, never a
re-serialisation (key order and number formatting would differ).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from app.errors import InvalidRequest, PermissionDenied
from gateways.nbiot.events import PlatformEvent
from resolver.text import first_problem

NB_IOT_LOGIN = 10


def signature(token: str, nonce: str, msg: str) -> str:
    digest = hashlib.md5((token + nonce + msg).encode(), usedforsecurity=False).digest()
    return base64.b64encode(digest).decode()


def signed(token: str, nonce: str, msg: str, sent: str) -> bool:
    # A '+' in an unencoded query string arrives as a space.
    return hmac.compare_digest(signature(token, nonce, msg), sent.replace(" ", "+"))


def verify_url(token: str, *, msg: str, nonce: str, sent: str) -> str:
    """The answer to OneNET's URL check (``msg`` itself), or ``PermissionDenied``."""
    if not signed(token, nonce, msg, sent):
        raise PermissionDenied("OneNET URL verification: the signature does not match the token")
    return msg


def _members(raw: str) -> dict[str, tuple[Any, str]]:
    """The top-level members of a JSON object: name -> (value, its exact text)."""
    decoder = json.JSONDecoder()
    text = raw.strip()
    if not text.startswith("{"):
        raise InvalidRequest("OneNET push body must be a JSON object")
    members: dict[str, tuple[Any, str]] = {}
    position = 1
    try:
        while True:
            position = _skip(text, position)
            if text[position] == "}":
                return members
            name, position = decoder.raw_decode(text, position)
            position = _skip(text, position)
            if text[position] != ":":
                raise ValueError("':' expected")
            start = _skip(text, position + 1)
            value, position = decoder.raw_decode(text, start)
            members[str(name)] = (value, text[start:position])
            position = _skip(text, position)
            if text[position] == ",":
                position += 1
    except (ValueError, IndexError) as exc:
        raise InvalidRequest(f"OneNET push body is not valid JSON: {exc}") from exc


def _skip(text: str, position: int) -> int:
    while text[position] in " \t\r\n":
        position += 1
    return position


def parse_push(raw: bytes, token: str) -> PlatformEvent | None:
    """The device event of a signed push; None for pushes that say nothing about liveness.
    A push naming no device by IMEI, or carrying text that cannot be stored, is refused."""
    members = _members(raw.decode("utf-8", errors="strict"))
    msg, msg_text = members.get("msg", (None, ""))
    nonce = members.get("nonce", (None, ""))[0]
    sent = members.get("msg_signature", (None, ""))[0]
    if not isinstance(nonce, str) or not isinstance(sent, str):
        raise PermissionDenied("OneNET push without nonce and msg_signature")
    # Some OneNET versions send msg as a JSON string; then its content is what was signed.
    signed_text = msg if isinstance(msg, str) else msg_text
    if not signed(token, nonce, signed_text, sent):
        raise PermissionDenied("OneNET push: msg_signature does not match the token")
    if isinstance(msg, str):
        try:
            msg = json.loads(msg)
        except ValueError as exc:
            raise InvalidRequest("OneNET msg is not JSON") from exc
    if not isinstance(msg, dict):
        raise InvalidRequest("OneNET msg must be an object")
    if (found := first_problem(msg, "msg")) is not None:
        raise InvalidRequest(found)
    if msg.get("type") not in (1, 2):
        return None  # other message kinds say nothing about a device's liveness
    imei = msg.get("imei")
    if not isinstance(imei, str) or not imei:
        # Devices register by IMEI: answering 200 would tell the platform all is well.
        raise InvalidRequest("msg.imei is required: the device's IMEI, as a string")
    details = {k: msg[k] for k in ("dev_id", "ds_id", "value", "at") if k in msg}
    if msg.get("type") == 2:
        kind = "online" if msg.get("status") == 1 else "offline"
        return PlatformEvent("onenet", imei, kind, details)
    return PlatformEvent("onenet", imei, "data", details)
