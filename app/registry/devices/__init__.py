"""Devices: registration by hardware id (``registration``, ``hardware``), liveness, the
provisioning keys devices register with, and the LoRaWAN and NB-IoT platforms that bring them."""

from __future__ import annotations

from app.registry.devices.hardware import candidates, device_suffix, normalise
from app.registry.devices.liveness import Heartbeat, HeartbeatOutcome, Liveness, battery_level
from app.registry.devices.nbiot import PlatformAccount
from app.registry.devices.registration import Registered, Registration

__all__ = [
    "Heartbeat",
    "HeartbeatOutcome",
    "Liveness",
    "PlatformAccount",
    "Registered",
    "Registration",
    "battery_level",
    "candidates",
    "device_suffix",
    "normalise",
]
