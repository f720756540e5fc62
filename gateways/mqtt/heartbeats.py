"""Heartbeats collected in memory and written in batches, not one transaction per message."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace

from sqlalchemy.exc import SQLAlchemyError

from app.errors import DatabaseUnavailable
from app.registry.devices import Heartbeat
from app.supervisor import idle
from gateways.devices import DeviceService
from gateways.mqtt.stats import Counters

log = logging.getLogger("gateways.mqtt.heartbeats")


class HeartbeatBatcher:
    """Keeps the newest heartbeat per device and flushes them every ``interval`` seconds, or
    sooner once ``batch_size`` devices are pending. It also marks silent devices offline."""

    def __init__(
        self,
        devices: DeviceService,
        counters: Counters,
        *,
        interval: float,
        batch_size: int,
        offline_sweep_every: float,
        on_unknown: Callable[[Sequence[Heartbeat]], None] = lambda _beats: None,
    ) -> None:
        self._devices = devices
        self._counters = counters
        self._interval = interval
        self._batch_size = batch_size
        self._sweep_every = offline_sweep_every
        self._on_unknown = on_unknown
        self._pending: dict[tuple[str, str], Heartbeat] = {}
        self._full = asyncio.Event()
        self._writing = asyncio.Lock()

    def add(self, beat: Heartbeat) -> None:
        key = (beat.prefix, beat.hardware_id)
        pending = self._pending.get(key)
        self._pending[key] = beat if pending is None else _merged(pending, beat)
        if len(self._pending) >= self._batch_size:
            self._full.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_sweep = loop.time() + self._sweep_every
        while True:
            await idle(self._full, self._interval)
            self._full.clear()
            await self.flush()
            if loop.time() >= next_sweep:
                next_sweep = loop.time() + self._sweep_every
                await self._sweep()

    async def flush(self) -> None:
        """Write what is pending (after any write already under way)."""
        async with self._writing:
            await self._flush()

    async def _flush(self) -> None:
        if not self._pending:
            return
        beats, self._pending = list(self._pending.values()), {}
        try:
            outcome = await self._devices.apply_heartbeats(beats)
        except (DatabaseUnavailable, SQLAlchemyError, OSError) as exc:
            log.warning("gateways.heartbeats.flush_failed", extra={"error": str(exc)})
            for beat in beats:  # keep them for the next flush; newer ones win
                self.add(beat)
            return
        self._counters.heartbeat_writes += 1
        self._counters.heartbeats += outcome.applied
        self._counters.heartbeats_unknown += len(outcome.unknown)
        if outcome.unknown:
            self._on_unknown(outcome.unknown)

    async def _sweep(self) -> None:
        try:
            offline = await self._devices.mark_offline()
        except (DatabaseUnavailable, SQLAlchemyError, OSError) as exc:
            log.warning("gateways.heartbeats.sweep_failed", extra={"error": str(exc)})
            return
        self._counters.went_offline += len(offline)


def _merged(one: Heartbeat, other: Heartbeat) -> Heartbeat:
    """Two heartbeats of a device as one: the newer wins, but what only one of them says
    (a battery level, a status) is kept."""
    older, newer = (one, other) if one.at <= other.at else (other, one)
    return replace(
        newer,
        status=newer.status if newer.status is not None else older.status,
        battery=newer.battery if newer.battery is not None else older.battery,
    )
