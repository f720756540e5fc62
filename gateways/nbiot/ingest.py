"""Platform pushes are answered at once and applied by one worker task from a queue."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

from app.auth import Principal
from app.errors import NodeError
from app.registry.devices import Registration
from gateways.devices import DeviceService
from gateways.nbiot.events import PlatformEvent
from resolver.errors import ResolverError

log = logging.getLogger("gateways.nbiot")


@dataclass(frozen=True)
class Work:
    prefix: str
    principal: Principal
    event: PlatformEvent


class IngestQueue:
    """Bounded: when full, pushes get 503 and the platform retries later."""

    def __init__(self, devices: DeviceService, *, size: int = 10_000) -> None:
        self.devices = devices
        self._queue: asyncio.Queue[Work] = asyncio.Queue(size)
        self.applied = 0
        self.registered = 0  # devices seen for the first time
        self.failed = 0

    def offer(self, work: Work) -> bool:
        try:
            self._queue.put_nowait(work)
        except asyncio.QueueFull:
            return False
        return True

    async def run(self) -> None:
        while True:
            work = await self._queue.get()
            try:
                await self._apply(work)
                self.applied += 1
            except (NodeError, ResolverError, SQLAlchemyError, OSError) as exc:
                self.failed += 1
                log.warning(
                    "gateways.nbiot.failed", extra={"imei": work.event.imei, "error": str(exc)}
                )
            finally:
                self._queue.task_done()

    async def drained(self) -> None:
        """Wait until everything queued so far is applied (tests, shutdown)."""
        await self._queue.join()

    async def _apply(self, work: Work) -> None:
        event = work.event
        if event.kind == "offline":
            await self.devices.device_offline(work.prefix, "imei", event.imei)
            return
        # Data and online pushes register the device on first sight (idempotent) and
        # mark it seen now.
        registered = await self.devices.register_as(
            work.principal, work.prefix, Registration(event.imei, "imei", network="nbiot")
        )
        self.registered += registered.created
