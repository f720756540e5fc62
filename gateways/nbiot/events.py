"""What an NB-IoT platform push means for a device, whichever platform sent it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class PlatformEvent:
    """A device reported by IMEI: it sent data (``data``), came ``online`` or went ``offline``."""

    platform: str
    imei: str
    kind: str  # data | online | offline
    details: dict[str, Any] = field(default_factory=dict)
