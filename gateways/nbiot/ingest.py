"""Platform pushes are kept in the database before they are answered 200, and applied by one
worker task per process: a push answered is applied even if the node stops first.

Applying is at least once: a process that stops between applying a push and forgetting it
applies it again when it (or another process) takes the push back. Registration is
idempotent on the IMEI and liveness states are idempotent, so that is harmless. A graceful
stop forgets what was applied and gives the rest back at once; after a crash, the rest waits
for its lease (``LEASE``) to run out.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy.exc import SQLAlchemyError

from app.backoff import jittered
from app.errors import DatabaseUnavailable, InvalidRequest
from app.registry import clock
from app.registry.devices import Registration
from app.storage import ingest_queue as queue
from app.storage.database import Database
from app.storage.ingest_queue import Claimed
from app.supervisor import idle
from gateways.devices import DeviceService
from gateways.nbiot.events import PlatformEvent
from resolver.errors import IdnodeError

log = logging.getLogger("gateways.nbiot")

BATCH = 100  # pushes one worker takes at a time
LEASE = 60.0  # seconds the pushes taken are this worker's alone
MAX_BACKOFF = 60.0  # longest wait before a push that failed for a transient reason is retried
MAX_IMEI_CHARS = 64
STOP_GRACE = 5.0  # seconds the worker has at shutdown to finish the push it is applying


class IngestQueue:
    """The pushes waiting in the ``ingest_queue`` table and this process's worker applying them.

    Bounded: when ``limit`` pushes wait (over all processes), new ones get 503 and the platform
    retries later. Who registers a device is looked up when its push is applied, so a push
    for an account removed, or whose provisioning key was revoked, since it was answered is
    dropped. ``applied``, ``registered`` and ``failed`` count this process's work.
    """

    def __init__(
        self,
        database: Database,
        devices: DeviceService,
        *,
        limit: int = 10_000,
        poll_interval: float = 1.0,
    ) -> None:
        self.devices = devices
        self._database = database
        self._limit = limit
        self._poll_interval = poll_interval
        # Unique per worker, also between apps in one process (tests) and nodes on one host.
        self._holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._settled: list[int] = []  # applied or dropped, still to be forgotten
        self._stopping = False
        self.applied = 0
        self.registered = 0  # devices seen for the first time
        self.failed = 0

    async def offer(self, prefix: str, event: PlatformEvent) -> bool:
        """Keep the push (committed when this returns True); False when the queue is full."""
        if len(event.imei) > MAX_IMEI_CHARS:
            raise InvalidRequest(f"IMEI longer than {MAX_IMEI_CHARS} characters")
        async with self._database.write_session() as session:
            if await queue.waiting(session, up_to=self._limit) >= self._limit:
                return False
            await queue.add(
                session,
                prefix=prefix,
                platform=event.platform,
                imei=event.imei,
                kind=event.kind,
                details=event.details,
                at=clock.now(),
            )
            await session.commit()
        self._wake.set()
        return True

    def stop_soon(self) -> None:
        """Have the worker end after the push it is applying (the rest of its batch is
        given back by :meth:`close`)."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Apply pushes until cancelled or told to stop; the database being unreachable
        pauses it, with back-off, and it carries on where it was."""
        outages = 0
        while not self._stopping:
            try:
                taken = await self._apply_batch()
            except (DatabaseUnavailable, SQLAlchemyError, OSError) as exc:
                outages += 1
                log.warning("gateways.nbiot.queue_unavailable", extra={"error": str(exc)})
                await asyncio.sleep(jittered(outages, cap=MAX_BACKOFF))
                continue
            outages = 0
            if taken < BATCH and not self._stopping:
                await idle(self._wake, self._poll_interval)

    async def drained(self) -> None:
        """Wait until every push queued so far, by any process, is applied or dropped (tests
        use it to see the outcome of their pushes)."""
        async with self._database.read_session() as session:
            last = await queue.last_id(session)
        if last is None:
            return
        while True:
            progress = self._progress
            self._wake.set()
            async with self._database.read_session() as session:
                if not await queue.left(session, up_to_id=last):
                    return
            await idle(progress, self._poll_interval)

    async def close(self) -> None:
        """After the worker stopped: forget what it applied and give back what it had not,
        so another process takes it at once instead of after the lease."""
        try:
            async with self._database.write_session() as session:
                await queue.remove(session, self._settled, holder=self._holder)
                await queue.release(session, holder=self._holder)
                await session.commit()
        except (DatabaseUnavailable, SQLAlchemyError, OSError) as exc:
            log.warning("gateways.nbiot.release_failed", extra={"error": str(exc)})
        self._settled.clear()

    async def _apply_batch(self) -> int:
        """Take due pushes, apply them one by one (each in its own transaction), then forget
        them in one; pushes whose apply failed for a transient reason wait and are retried."""
        self._wake.clear()
        async with self._database.write_session() as session:
            claimed = await queue.claim(
                session, holder=self._holder, now=clock.now(), lease=LEASE, limit=BATCH
            )
            await session.commit()
        if not claimed:
            return 0
        # Stop well inside the lease, so no other worker takes a push this one is applying.
        deadline = time.monotonic() + LEASE / 2
        retry: list[Claimed] = []
        unapplied: list[int] = []
        for push in claimed:
            if self._stopping or time.monotonic() > deadline:
                unapplied.append(push.id)
            elif await self._apply(push):
                self._settled.append(push.id)
            else:
                retry.append(push)
        await self._settle(retry, unapplied)
        self._progress.set()
        self._progress = asyncio.Event()
        return len(claimed)

    async def _settle(self, retry: Sequence[Claimed], unapplied: Sequence[int]) -> None:
        async with self._database.write_session() as session:
            await queue.remove(session, self._settled, holder=self._holder)
            now = clock.now()
            for push in retry:
                later = now + timedelta(seconds=jittered(push.attempts + 1, cap=MAX_BACKOFF))
                await queue.retry_later(session, push, holder=self._holder, at=later)
            await queue.release(session, holder=self._holder, ids=unapplied)
            await session.commit()
        self._settled.clear()

    async def _apply(self, push: Claimed) -> bool:
        """Apply one push: True when it is done with (applied or dropped for good), False
        when it should be retried later."""
        where = {"prefix": push.prefix, "platform": push.platform, "imei": push.imei}
        try:
            applied = await self._apply_event(push)
        except (DatabaseUnavailable, SQLAlchemyError, OSError) as exc:  # retried later
            log.warning(
                "gateways.nbiot.retrying",
                extra={**where, "attempts": push.attempts + 1, "error": str(exc)},
            )
            return False
        except IdnodeError as exc:
            self.failed += 1
            log.warning("gateways.nbiot.failed", extra={**where, "error": str(exc)})
            return True
        except Exception:  # a push the handler fails on is dropped, never retried forever
            self.failed += 1
            log.exception("gateways.nbiot.handler_failed", extra=where)
            return True
        if not applied:
            self.failed += 1
            log.warning("gateways.nbiot.account_gone", extra=where)
            return True
        self.applied += 1
        return True

    async def _apply_event(self, push: Claimed) -> bool:
        """False when the enterprise's account on the platform is gone or its key revoked."""
        if push.kind == "offline":
            changed = await self.devices.platform_device_offline(
                push.prefix, push.platform, push.imei
            )
            return changed is not None
        # Data and online pushes register the device on first sight (idempotent) and
        # mark it seen now.
        registered = await self.devices.register_for_platform(
            push.prefix, push.platform, Registration(push.imei, "imei", network="nbiot")
        )
        if registered is None:
            return False
        self.registered += registered.created
        return True
