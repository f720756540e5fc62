"""Delivery of the outbox to the top-level node: signed JSON batches, in order, retried with
back-off, by one process at a time (the one holding the lease in ``reporting_state``)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from app.backoff import jittered
from app.errors import DatabaseUnavailable
from app.registry import clock
from app.reporting.keys import NodeKey
from app.reporting.statistics import period_statistics, window_start
from app.settings import Settings
from app.storage import outbox
from app.storage.database import Database
from app.storage.models import ReportingState

log = logging.getLogger("app.reporting.delivery")
LEASE_TTL = 30.0  # seconds a crashed holder blocks delivery before another process takes over
_BATCH_NAMESPACE = uuid.UUID("9d5c4a8e-3f1b-4c55-9a55-2f4c1b0e7d11")
_STATISTICS_CATCH_UP = 24  # statistics events written per round after a long stop
_RETRYABLE_4XX = {408, 425, 429}


class DeliveryFailed(Exception):
    """The top-level node did not acknowledge a batch; it is sent again later."""

    def __init__(self, reason: str, *, rejected: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.rejected = rejected  # a 4xx that resending will not fix without an operator


def process_name() -> str:
    """Names this process in the lease and its statistics samples."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def batch_key(node: str, first: str, last: str) -> str:
    """The batch's ``Idempotency-Key``: the same events re-sent after a crash carry the same
    key (the top-level node also de-duplicates each event by its own id)."""
    return str(uuid.uuid5(_BATCH_NAMESPACE, f"{node}:{first}:{last}"))


class Reporter:
    """Delivers the outbox while this process holds the lease.

    ``errors`` counts failed delivery attempts (for the metrics), ``delivered`` events the
    top-level node acknowledged. Events are marked delivered only after a 2xx answer, so a
    crash between the answer and the mark re-sends them, with their ids, once.
    """

    def __init__(
        self, database: Database, settings: Settings, key: NodeKey, *, http: httpx.AsyncClient
    ) -> None:
        assert settings.upstream_report_url is not None
        self._database = database
        self._settings = settings
        self._url = settings.upstream_report_url
        self._key = key
        self._http = http
        self.holder = process_name()
        self.errors = 0
        self.delivered = 0
        self._failures = 0  # in a row, for the back-off

    async def run(self) -> None:
        while True:
            await self._wait(await self.step())

    async def step(self) -> float:
        """One round: take (or renew) the lease, write due statistics events, send one batch.
        Returns the seconds to wait before the next round."""
        idle = self._settings.report_interval
        try:
            if not await self._take_lease():
                return idle
            sent = await self.deliver_batch()
        except DeliveryFailed as exc:
            self.errors += 1
            self._failures += 1
            level = logging.ERROR if exc.rejected else logging.WARNING
            log.log(level, "app.reporting.delivery_failed", extra={"reason": exc.reason})
            return self._backoff()
        except (DatabaseUnavailable, SQLAlchemyError) as exc:
            log.warning("app.reporting.database_unavailable", extra={"reason": str(exc)[:200]})
            return idle
        self._failures = 0
        return 0.0 if sent >= self._settings.report_batch_size else idle

    def _backoff(self) -> float:
        """Exponential from one second, capped, with jitter so several nodes do not retry in
        step against a recovering top-level node."""
        return jittered(self._failures, cap=self._settings.report_max_backoff)

    async def _wait(self, seconds: float) -> None:
        # A long back-off must not let the lease lapse (another process would retry at once).
        while seconds > 0:
            chunk = min(seconds, LEASE_TTL / 3)
            await asyncio.sleep(chunk)
            seconds -= chunk
            if seconds > 0:
                try:
                    await self._take_lease()
                except (DatabaseUnavailable, SQLAlchemyError):
                    return

    async def _take_lease(self) -> bool:
        now = clock.now()
        async with self._database.write_session() as session:
            lease = await outbox.take_lease(session, holder=self.holder, now=now, ttl=LEASE_TTL)
            if lease is not None:
                await self._report_statistics(session, lease, now)
                await outbox.prune(
                    session,
                    delivered_before=now - timedelta(days=self._settings.outbox_retention_days),
                )
            await session.commit()
        return lease is not None

    async def _report_statistics(
        self, session: AsyncSession, lease: ReportingState, now: datetime
    ) -> None:
        """One ``statistics`` event per finished window, summed over every process, written
        by whichever process holds the lease (so once per node)."""
        interval = timedelta(seconds=self._settings.report_stats_interval)
        grace = min(interval, timedelta(seconds=10))  # for the last samples to be written
        start = (
            clock.as_utc(lease.statistics_until)
            if lease.statistics_until is not None
            else window_start(now, interval.total_seconds())
        )
        for _ in range(_STATISTICS_CATCH_UP):
            if start + interval + grace > now:
                break
            period = await period_statistics(session, start, start + interval)
            await outbox.add(session, kind="statistics", data=period.as_json(), at=now)
            start += interval
        if lease.statistics_until is None or clock.as_utc(lease.statistics_until) != start:
            await outbox.statistics_reported(session, start)

    async def deliver_batch(self) -> int:
        """Send the oldest undelivered events (at most one batch); the number acknowledged."""
        async with self._database.read_session() as session:
            events = await outbox.pending(session, self._settings.report_batch_size)
        if not events:
            return 0
        seqs = [e.seq for e in events]
        node = self._settings.node_prefix
        batch = batch_key(node, events[0].event_id, events[-1].event_id)
        body = orjson.dumps(
            {
                "node": node,
                "batch": batch,
                "events": [
                    {
                        "id": e.event_id,
                        "seq": e.seq,
                        "kind": e.kind,
                        "at": clock.as_utc(e.at).isoformat(),
                        "data": e.data,
                    }
                    for e in events
                ],
            }
        )
        try:
            response = await self._http.post(
                self._url, content=body, headers=self._headers(body, batch)
            )
        except httpx.HTTPError as exc:
            await self._failed(seqs, f"{type(exc).__name__}: {exc}")
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from exc
        if not response.is_success:
            reason = f"HTTP {response.status_code}: {response.text[:200]}"
            await self._failed(seqs, reason)
            rejected = (
                400 <= response.status_code < 500 and response.status_code not in _RETRYABLE_4XX
            )
            raise DeliveryFailed(reason, rejected=rejected)
        async with self._database.write_session() as session:
            await outbox.mark_delivered(session, seqs, at=clock.now())
            await session.commit()
        self.delivered += len(events)
        return len(events)

    def _headers(self, body: bytes, batch: str) -> dict[str, Any]:
        return {
            "Content-Type": "application/json",
            "Idempotency-Key": batch,
            "X-Idnode-Signature": self._key.signature(body),
            "X-Idnode-Key-Id": self._key.key_id,
            "X-Idnode-Node": self._settings.node_prefix,
        }

    async def _failed(self, seqs: list[int], reason: str) -> None:
        async with self._database.write_session() as session:
            await outbox.mark_failed(session, seqs, error=reason)
            await session.commit()

    async def release(self) -> None:
        async with self._database.write_session() as session:
            await outbox.release_lease(session, holder=self.holder)
            await session.commit()
