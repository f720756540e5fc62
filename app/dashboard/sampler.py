"""One sampler per process, shared by every open dashboard.

It reads the metrics registry once a second while at least one dashboard listens, keeps the
last snapshots (the charts' history) and hands each new one to every listener. It starts
with the first listener and stops a little after the last one leaves, so a node nobody
watches spends nothing on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from prometheus_client import CollectorRegistry

from app.dashboard.readings import Reading, read
from app.dashboard.snapshot import snapshot

__all__ = ["Listener", "Sampler"]

log = logging.getLogger("app.dashboard.sampler")
_QUEUED = 4  # snapshots a slow listener may fall behind before it loses the oldest


class Listener:
    """One open dashboard: the history when it joined, then each new snapshot."""

    def __init__(self, history: list[dict[str, Any]]) -> None:
        self.history = history
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(_QUEUED)

    async def next(self) -> dict[str, Any]:
        return await self._queue.get()

    def offer(self, figures: dict[str, Any]) -> None:
        if self._queue.full():  # a stalled page gets the newest figures when it wakes
            self._queue.get_nowait()
        self._queue.put_nowait(figures)


class Sampler:
    """Samples ``registry()`` every ``interval`` seconds while anyone listens.

    ``history`` snapshots are kept; percentiles and the hit ratio look back ``window``
    readings, top enterprises ``top_window``. ``idle_stop`` seconds after the last listener
    left, the sampling task ends (pages reconnect within that time without a gap).
    """

    def __init__(
        self,
        registry: Callable[[], CollectorRegistry],
        *,
        interval: float = 1.0,
        history: int = 120,
        window: int = 10,
        top_window: int = 60,
        idle_stop: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._registry = registry
        self.interval = interval
        self._window = window
        self._top_window = top_window
        self._idle_stop = idle_stop
        self._clock = clock
        self._readings: deque[Reading] = deque(maxlen=max(window, top_window) + 1)
        self._history: deque[dict[str, Any]] = deque(maxlen=history)
        self._listeners: set[Listener] = set()
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @asynccontextmanager
    async def listen(self) -> AsyncIterator[Listener]:
        """Join as a listener (starting the sampler if it is not running) until exit."""
        if not self.running:
            self._start()
        listener = Listener(list(self._history))
        self._listeners.add(listener)
        try:
            yield listener
        finally:
            self._listeners.discard(listener)

    async def sample(self) -> dict[str, Any]:
        """Take one reading now, keep it, and return the snapshot it gives."""
        registry = self._registry()
        # multiprocess mode reads one file per worker: off the event loop
        reading = await asyncio.to_thread(read, registry, self._clock())
        self._readings.append(reading)
        figures = snapshot(list(self._readings), window=self._window, top_window=self._top_window)
        self._history.append(figures)
        return figures

    async def stop(self) -> None:
        """End the sampling task (at shutdown)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _start(self) -> None:
        # After an idle stop the old figures would draw a misleading line across the gap.
        self._readings.clear()
        self._history.clear()
        self._task = asyncio.create_task(self._run(), name="dashboard.sampler")
        self._task.add_done_callback(_report_failure)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        idle_since: float | None = None
        next_at = loop.time()
        while True:
            if self._listeners:
                idle_since = None
            elif idle_since is None:
                idle_since = loop.time()
            elif loop.time() - idle_since >= self._idle_stop:
                self._task = None
                return
            figures = await self.sample()
            for listener in list(self._listeners):
                listener.offer(figures)
            # a fixed cadence, but no burst of catch-up samples after the loop was busy
            next_at = max(next_at + self.interval, loop.time())
            await asyncio.sleep(next_at - loop.time())


def _report_failure(task: asyncio.Task[None]) -> None:
    # Pages notice through their stream timing out and reconnecting (which starts a new
    # task); the operator learns why from this line, also shown under recent errors.
    if not task.cancelled() and task.exception() is not None:
        log.error("dashboard.sampler.failed", exc_info=task.exception())
