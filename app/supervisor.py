"""One supervisor for the node's long-lived tasks (MQTT workers, the NB-IoT applier, the report
delivery, cache invalidation, the heartbeat flusher, the metrics pump).

Each loop handles the failures it expects (a broker or database away) itself. Anything else
ends the loop: the supervisor logs it at once with its traceback, counts it in
``idnode_task_restarts_total{task}`` and starts the loop again after a back-off
(``app.backoff``). A task *keeps failing* when it crashed ``FAILING_AFTER`` times in a row,
each run lasting less than ``STABLE_AFTER`` seconds; ``GET /readyz`` then names it, until a
run of it has lasted ``STABLE_AFTER`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from app.backoff import jittered
from app.metrics import metrics

log = logging.getLogger("app.supervisor")

FAILING_AFTER = 3  # crashes in a row, each soon after its start
STABLE_AFTER = 60.0  # seconds a run must last for the crashes before it to be forgotten
STOP_WAIT = 1.0  # seconds a cancelled task has to end before it is cancelled again
STOP_ATTEMPTS = 10

Loop = Callable[[], Coroutine[Any, Any, None]]


@dataclass(eq=False)
class Supervised:
    """A task under the supervisor: how often it crashed, and how to stop it."""

    name: str
    restarts: int = 0  # crashes since the node started
    streak: int = 0  # crashes in a row, each within STABLE_AFTER of its start
    running_since: float | None = None  # loop time of the current run's start
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    async def stop(self, *, grace: float = 0.0) -> None:
        """Wait up to ``grace`` seconds for the task to end by itself (a loop told to stop
        at its next safe point), then cancel it and wait for it to end (at shutdown). A loop
        that let a cancellation slip (Python 3.11's ``asyncio.wait_for`` drops one that
        arrives as the awaited thing completes) is cancelled again, so shutdown never hangs
        on it."""
        task = self.task
        if task is None:
            return
        if grace > 0:
            await asyncio.wait({task}, timeout=grace)
        for _ in range(STOP_ATTEMPTS):
            task.cancel()
            await asyncio.wait({task}, timeout=STOP_WAIT)
            if task.done():
                break
            log.warning("app.supervisor.stop_ignored", extra={"task": self.name})
        else:
            log.error("app.supervisor.stop_failed", extra={"task": self.name})
            return
        if not task.cancelled() and task.exception() is not None:
            log.error("app.supervisor.stopped_with_error", exc_info=task.exception())


async def idle(event: asyncio.Event, seconds: float) -> bool:
    """Wait until ``event`` is set, for at most ``seconds``; whether it is set. The loops'
    one way to sleep until woken: a cancellation arriving as the event is set still ends the
    loop (with ``asyncio.wait_for`` on Python 3.11 it would be lost, and the loop run on)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
    return event.is_set()


class Supervisor:
    """Starts named loops and restarts each one that crashes, with back-off."""

    def __init__(self, *, max_backoff: float = 30.0) -> None:
        self._max_backoff = max_backoff
        self._tasks: dict[str, Supervised] = {}

    def start(self, name: str, loop: Loop) -> Supervised:
        """Run ``loop()`` as the task ``name`` (unique) until it is stopped; ``loop`` is
        called again for each restart."""
        running = self._tasks.get(name)
        if running is not None and running.task is not None and not running.task.done():
            raise ValueError(f"a task named {name!r} is already supervised")
        supervised = self._tasks[name] = Supervised(name)
        supervised.task = asyncio.create_task(self._run(supervised, loop), name=name)
        return supervised

    def failing(self) -> list[str]:
        """Why the tasks that keep failing are not ready, one line each."""
        now = asyncio.get_running_loop().time()
        return [
            f"task {t.name}: crashed {t.streak} times in a row (see the log)"
            for t in self._tasks.values()
            if t.streak >= FAILING_AFTER
            and (t.running_since is None or now - t.running_since < STABLE_AFTER)
        ]

    async def _run(self, supervised: Supervised, loop: Loop) -> None:
        clock = asyncio.get_running_loop()
        while True:
            supervised.running_since = started = clock.time()
            try:
                await loop()
            except Exception as exc:  # what the loop did not expect: restart it
                delay = self._crashed(supervised, exc, ran=clock.time() - started)
            else:
                log.info("app.supervisor.task_ended", extra={"task": supervised.name})
                return
            await asyncio.sleep(delay)

    def _crashed(self, supervised: Supervised, error: Exception, *, ran: float) -> float:
        """Count and log the crash; the seconds to wait before the restart."""
        supervised.running_since = None
        supervised.restarts += 1
        supervised.streak = 1 if ran >= STABLE_AFTER else supervised.streak + 1
        delay = jittered(supervised.streak, cap=self._max_backoff)
        metrics().task_restarts.labels(supervised.name).inc()
        log.error(
            "app.supervisor.task_crashed",
            extra={"task": supervised.name, "restarts": supervised.restarts, "in": delay},
            exc_info=error,
        )
        return delay
