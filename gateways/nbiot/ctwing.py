"""China Telecom CTWing subscription push: ``dataReport`` messages (and device online /
offline notices) naming the device by IMEI. CTWing retries three times and then cools down,
dropping messages, so the endpoint only queues the work."""

from __future__ import annotations

from typing import Any

from app.errors import InvalidRequest
from gateways.nbiot.events import PlatformEvent
from resolver.text import first_problem

# eventType of deviceOnlineOfflineReport: 1 online, 0 offline
ONLINE_STATES = {"1": "online", "0": "offline", "ONLINE": "online", "OFFLINE": "offline"}


def parse_push(body: Any) -> PlatformEvent | None:
    """The device event of a push (None for messages that say nothing about liveness); a
    push that names no device by IMEI, or carries text that cannot be stored, is refused."""
    if not isinstance(body, dict):
        raise InvalidRequest("CTWing push must be a JSON object")
    if (found := first_problem(body, "push")) is not None:
        raise InvalidRequest(found)
    imei = body.get("IMEI", body.get("imei"))
    if not isinstance(imei, str) or not imei:
        raise InvalidRequest("push.IMEI is required: the device's IMEI, as a string")
    details = {k: body[k] for k in ("deviceId", "productId", "timestamp") if k in body}
    kind = body.get("messageType")
    if kind == "dataReport":
        return PlatformEvent("ctwing", imei, "data", details)
    if kind == "deviceOnlineOfflineReport":
        state = ONLINE_STATES.get(str(body.get("eventType", "")).upper())
        return PlatformEvent("ctwing", imei, state, details) if state else None
    return None
