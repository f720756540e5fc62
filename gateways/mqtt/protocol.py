"""The device protocol over MQTT: topics, request payloads and replies (see docs/devices.md).

Topics under the root (default ``idnode/v1``)::

    {root}/{prefix}/devices/{hardwareId}/register    one device registers
    {root}/{prefix}/devices/{hardwareId}/heartbeat   a device is alive
    {root}/{prefix}/gateway/{gatewayId}/register     a gateway box registers its machines

Replies go to the request topic + ``/accepted`` or ``/rejected`` (AWS IoT style), or to an
MQTT 5 Response Topic with the request's Correlation Data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from app import errors as node
from app.registry.devices import Heartbeat, Registration, battery_level
from resolver import errors as handle
from resolver.errors import IdnodeError, InvalidHandle
from resolver.identifier import parse_prefix
from resolver.text import first_problem, problem


class MalformedMessage(node.InvalidRequest):
    """The message is not a JSON object of the expected shape."""


# The device protocol's own names where they differ from the error's (``exc.name``); found
# through the class's MRO, so subclasses answer as their parent does.
DEVICE_PROTOCOL_NAMES: dict[type[IdnodeError], tuple[int, str]] = {
    node.RequestTooLarge: (413, "PayloadTooLarge"),
    node.AuthenticationFailed: (401, "Unauthorized"),
    node.PermissionDenied: (403, "Forbidden"),
    handle.NotResponsible: (404, "EnterpriseNotFound"),
}
INTERNAL = (500, "InternalError")


def error_code(error: Exception) -> tuple[int, str]:
    """(statusCode, errorCode) of a rejected reply for ``error``."""
    if not isinstance(error, IdnodeError):
        return INTERNAL
    for cls in type(error).__mro__:
        if cls in DEVICE_PROTOCOL_NAMES:
            return DEVICE_PROTOCOL_NAMES[cls]
    return error.status, error.name


@dataclass(frozen=True)
class Route:
    """What a topic asks for."""

    action: str  # register | heartbeat | gateway-register
    prefix: str
    name: str  # the hardware id, or the gateway id


class Topics:
    def __init__(self, root: str, shared_group: str | None = None) -> None:
        self.root = root.strip("/")
        self._depth = len(self.root.split("/"))
        self._share = f"$share/{shared_group}/" if shared_group else ""

    def shared(self, topic_filter: str) -> str:
        """``topic_filter`` through the shared subscription group, when there is one."""
        return self._share + topic_filter

    @property
    def filters(self) -> list[str]:
        return [
            f"{self._share}{self.root}/+/devices/+/register",
            f"{self._share}{self.root}/+/devices/+/heartbeat",
            f"{self._share}{self.root}/+/gateway/+/register",
        ]

    def route(self, topic: str) -> Route | None:
        """The request a topic names; None for topics that are not requests (our replies)."""
        levels = topic.split("/")
        if len(levels) != self._depth + 4 or "/".join(levels[: self._depth]) != self.root:
            return None
        prefix, kind, name, verb = levels[self._depth :]
        action = {
            ("devices", "register"): "register",
            ("devices", "heartbeat"): "heartbeat",
            ("gateway", "register"): "gateway-register",
        }.get((kind, verb))
        if action is None or not name:
            return None
        return Route(action, prefix, name)


def checked(route: Route) -> Route:
    """``route`` when its topic levels are text that may be stored (a gateway id is)."""
    kind = "gateway id" if route.action == "gateway-register" else "hardwareId"
    for name, level in (("prefix", route.prefix), (kind, route.name)):
        if (found := first_problem(level, f"{name} in the topic")) is not None:
            raise MalformedMessage(found)
    return route


def canonical_prefix(prefix: str) -> str:
    try:
        return parse_prefix(prefix)
    except InvalidHandle as exc:
        raise node.EnterpriseNotFound(f"{prefix!r} in the topic is not a prefix") from exc


def decode(payload: bytes, *, limit: int, optional: bool = False) -> dict[str, Any]:
    """The message as a JSON object, or ``MalformedMessage``/``RequestTooLarge``."""
    if len(payload) > limit:
        raise node.RequestTooLarge(f"message of {len(payload)} bytes exceeds the limit of {limit}")
    if optional and not payload.strip():
        return {}
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise MalformedMessage(f"message is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise MalformedMessage("message must be a JSON object")
    for name, value in body.items():
        if (found := problem(name)) is not None:
            raise MalformedMessage(f"a member name {found}")
        if (found := first_problem(value, name)) is not None:
            raise MalformedMessage(found)
    return body


def request_id(body: dict[str, Any] | None) -> str | None:
    value = (body or {}).get("requestId")
    fits = isinstance(value, str) and len(value) <= 200 and problem(value) is None
    return value if fits else None


def credentials(body: dict[str, Any]) -> tuple[str, str]:
    """``provisionKey`` and ``provisionSecret``: strings, or the message is malformed."""
    key, secret = body.get("provisionKey"), body.get("provisionSecret")
    if not isinstance(key, str):
        raise MalformedMessage(f"provisionKey must be a string, not {_json_type(key)}")
    if not isinstance(secret, str):
        raise MalformedMessage(f"provisionSecret must be a string, not {_json_type(secret)}")
    return key, secret


def _json_type(value: object) -> str:
    if value is None:
        return "null (or missing)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "a list" if isinstance(value, list) else "an object"


def registration(
    body: dict[str, Any], hardware_id: object, *, gateway_id: str | None = None
) -> Registration:
    kind = body.get("hardwareIdType")
    if not isinstance(kind, str):
        raise MalformedMessage("hardwareIdType must be a string: serial, mac, imei or deveui")
    if not isinstance(hardware_id, str):
        raise node.InvalidHardwareId("hardwareId must be a string")
    attributes = body.get("attributes", {})
    return Registration(
        hardware_id=hardware_id,
        hardware_id_type=kind,
        attributes=attributes if attributes is not None else {},
        network="mqtt",
        gateway_id=gateway_id,
    )


def heartbeat(prefix: str, hardware_id: str, body: dict[str, Any], now: datetime) -> Heartbeat:
    """``{"ts": ISO 8601 or epoch seconds, "status": {...}}``, both optional."""
    at = _moment(body.get("ts"), now)
    status = body.get("status")
    if status is not None and not isinstance(status, dict):
        raise MalformedMessage("status must be a JSON object")
    battery = None
    if status and "batteryLevel" in status:
        battery = battery_level(status["batteryLevel"], "status.batteryLevel")
    return Heartbeat(prefix, hardware_id, at, status, battery)


def _moment(ts: Any, now: datetime) -> datetime:
    if ts is None:
        return now
    try:
        if isinstance(ts, int | float) and not isinstance(ts, bool):
            moment = datetime.fromtimestamp(ts, UTC)
        elif isinstance(ts, str):
            moment = datetime.fromisoformat(ts.replace("Z", "+00:00"))
            moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        else:
            raise TypeError
    except (TypeError, ValueError, OverflowError, OSError) as exc:
        raise MalformedMessage(f"ts must be ISO 8601 or epoch seconds, not {ts!r}") from exc
    return min(moment, now)  # a device clock ahead of ours does not make it live longer


def accepted(request: str | None, handle: str, created: bool) -> dict[str, Any]:
    return {"requestId": request, "handle": handle, "created": created}


def rejected(request: str | None, error: Exception) -> dict[str, Any]:
    status, code = error_code(error)
    message = getattr(error, "message", None) if status != 500 else None
    return {
        "requestId": request,
        "statusCode": status,
        "errorCode": code,
        "errorMessage": message or "internal error; the registration was not completed",
    }
