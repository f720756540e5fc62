"""ChirpStack v4 MQTT integration events (JSON encoding) -> device registration and liveness.

Topic ``application/{applicationId}/device/{devEui}/event/{up|join|status|...}``. For mapped
applications only: ``join`` and the first ``up`` register the device by DevEUI, ``up``
updates its liveness, ``status`` its battery. ``deduplicationId`` makes a repeated event a
no-op. Protobuf JSON leaves out default values (``fCnt`` 0, ``adr`` false, no ``object``), so
every field but ``deviceInfo.devEui``/``applicationId`` (or the topic) is optional.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import aiomqtt
import orjson
from sqlalchemy.exc import SQLAlchemyError

from app import errors as node
from app.registry import clock
from app.registry.devices import Heartbeat, Registration, hardware
from gateways.devices import DeviceService
from gateways.mqtt.heartbeats import HeartbeatBatcher
from gateways.mqtt.stats import Counters
from resolver.errors import IdnodeError
from resolver.text import first_problem

log = logging.getLogger("gateways.lorawan")
KINDS = ("join", "up", "status")
REMEMBERED = 100_000  # deduplication ids and known devices kept per process


class _Recent:
    """A bounded set: the newest ``size`` keys."""

    def __init__(self, size: int) -> None:
        self._keys: OrderedDict[str, None] = OrderedDict()
        self._size = size

    def add(self, key: str) -> bool:
        """False when ``key`` was seen already."""
        if key in self._keys:
            return False
        self._keys[key] = None
        if len(self._keys) > self._size:
            self._keys.popitem(last=False)
        return True

    def __contains__(self, key: str) -> bool:
        return key in self._keys


class ChirpStackEvents:
    """Handles one ChirpStack event message (attached to the MQTT gateway's connection)."""

    def __init__(
        self,
        devices: DeviceService,
        heartbeats: HeartbeatBatcher,
        counters: Counters,
        *,
        max_payload: int,
    ) -> None:
        self._devices = devices
        self._heartbeats = heartbeats
        self._counters = counters
        self._max_payload = max_payload
        self._seen = _Recent(REMEMBERED)
        self._known = _Recent(REMEMBERED)  # "application/devEui" registered by this process

    async def handle(self, message: aiomqtt.Message) -> None:
        levels = message.topic.value.split("/")
        kind = levels[-1]
        if kind not in KINDS:
            return  # ack, txack, log, location, integration: nothing to do with identity
        try:
            event = self._decode(message.payload)
            application, dev_eui = self._identity(event, levels)
        except node.InvalidRequest as exc:
            self._counters.malformed += 1
            log.info("gateways.lorawan.malformed", extra={"error": exc.message})
            return
        dedup = event.get("deduplicationId")
        if isinstance(dedup, str) and not self._seen.add(f"{kind}/{dedup}"):
            self._counters.lorawan_duplicates += 1
            return
        try:
            await self._apply(kind, event, application, dev_eui)
        except (IdnodeError, SQLAlchemyError, OSError) as exc:
            self._counters.rejected += 1
            log.warning("gateways.lorawan.failed", extra={"devEui": dev_eui, "error": str(exc)})

    def _decode(self, payload: Any) -> dict[str, Any]:
        raw = bytes(payload) if isinstance(payload, bytes | bytearray) else str(payload).encode()
        if len(raw) > self._max_payload:
            raise node.InvalidRequest(f"event of {len(raw)} bytes exceeds {self._max_payload}")
        try:
            event = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise node.InvalidRequest(f"event is not JSON: {exc}") from exc
        if not isinstance(event, dict):
            raise node.InvalidRequest("event is not a JSON object")
        if (found := first_problem(event, "event")) is not None:
            raise node.InvalidRequest(found)
        return event

    @staticmethod
    def _identity(event: Mapping[str, Any], levels: list[str]) -> tuple[str, str]:
        info = event.get("deviceInfo")
        info = info if isinstance(info, dict) else {}
        # .../application/{applicationId}/device/{devEui}/event/{kind}
        application = info.get("applicationId") or (levels[-5] if len(levels) >= 6 else "")
        dev_eui = info.get("devEui") or (levels[-3] if len(levels) >= 6 else "")
        return str(application), hardware.normalise("deveui", str(dev_eui))

    async def _apply(
        self, kind: str, event: Mapping[str, Any], application: str, dev_eui: str
    ) -> None:
        known = f"{application}/{dev_eui}"
        if kind == "join" or (kind == "up" and known not in self._known):
            registered = await self._devices.register_for_application(
                application, self._registration(event, dev_eui)
            )
            if registered is None:
                self._counters.lorawan_unmapped += 1
                return
            self._known.add(known)
            self._counters.registered += registered.created
            self._counters.lorawan_registered += registered.created
            self._counters.replayed += not registered.created
            self._counters.lorawan_events += 1
            return
        prefix = await self._devices.application_prefix(application)
        if prefix is None:
            self._counters.lorawan_unmapped += 1
            return
        self._heartbeats.add(self._heartbeat(kind, event, prefix, dev_eui))
        self._counters.lorawan_events += 1

    @staticmethod
    def _registration(event: Mapping[str, Any], dev_eui: str) -> Registration:
        info = event.get("deviceInfo") or {}
        attributes = {}
        if isinstance(info.get("deviceProfileName"), str):
            attributes["model"] = info["deviceProfileName"][:256]
        return Registration(dev_eui, "deveui", attributes, network="lorawan")

    @staticmethod
    def _heartbeat(kind: str, event: Mapping[str, Any], prefix: str, dev_eui: str) -> Heartbeat:
        # Liveness is when the node heard of it: replayed or delayed events do not make a
        # device look silent, and a gateway's clock cannot make it look alive longer.
        now = clock.now()
        if kind == "status":
            battery = event.get("batteryLevel")
            level = None
            if (
                isinstance(battery, int | float)
                and not isinstance(battery, bool)
                and 0 <= battery <= 100
                and not event.get("batteryLevelUnavailable")
                and not event.get("externalPowerSource")
            ):
                level = round(battery)
            status = {"margin": event.get("margin", 0)}
            return Heartbeat(prefix, dev_eui, now, status, level)
        rx = event.get("rxInfo") or [{}]
        best = rx[0] if isinstance(rx, list) and rx and isinstance(rx[0], dict) else {}
        status = {
            "fCnt": event.get("fCnt", 0),
            "fPort": event.get("fPort"),
            "rssi": best.get("rssi"),
            "snr": best.get("snr"),
        }
        return Heartbeat(prefix, dev_eui, now, status)
