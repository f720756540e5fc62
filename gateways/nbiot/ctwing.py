"""China Telecom CTWing subscription push: ``dataReport`` messages (and device online /
offline notices) naming the device by IMEI. CTWing retries three times and then cools down,
dropping messages, so the endpoint only queues the work."""

from __future__ import annotations

from typing import Any

from app.errors import InvalidRequest
from gateways.nbiot.events import PlatformEvent

# eventType of deviceOnlineOfflineReport: 1 online, 0 offline
ONLINE_STATES = {"1": "online", "0": "offline", "ONLINE": "online", "OFFLINE": "offline"}


def parse_push(body: Any) -> PlatformEvent | None:
    if not isinstance(body, dict):
        raise InvalidRequest("CTWing push must be a JSON object")
    imei = body.get("IMEI") or body.get("imei")
    if not isinstance(imei, str):
        return None
    details = {k: body[k] for k in ("deviceId", "productId", "timestamp") if k in body}
    kind = body.get("messageType")
    if kind == "dataReport":
        return PlatformEvent("ctwing", imei, "data", details)
    if kind == "deviceOnlineOfflineReport":
        state = ONLINE_STATES.get(str(body.get("eventType", "")).upper())
        return PlatformEvent("ctwing", imei, state, details) if state else None
    return None
