"""What every gateway does with the registry: one transaction per unit of work.

Gateways speak their protocol and call these; the registry services hold the rules. Each
method commits once and then evicts what it changed from this process's resolver cache
(other processes learn of it through the database, see ``app.storage.invalidation``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import Principal
from app.errors import InvalidRequest, NodeError
from app.registry import devices, hardware, liveness, lorawan, nbiot, provisioning
from app.registry.devices import Registered, Registration
from app.registry.liveness import Heartbeat, HeartbeatOutcome, Liveness
from app.registry.nbiot import PlatformAccount
from app.settings import Settings
from app.storage.database import Database
from app.storage.invalidation import evict_touched
from resolver.cache import ResolverCache
from resolver.errors import IdnodeError

MAX_BATCH = 1000


class _WriteRefused(Exception):
    """A write was refused after its checks passed: redo the batch device by device."""


@dataclass(frozen=True)
class Request:
    """One device asking to register with a provisioning key."""

    prefix: str
    key: object
    secret: object
    registration: Registration

    @property
    def sort_key(self) -> tuple[str, str, str]:
        kind, raw = self.registration.hardware_id_type, self.registration.hardware_id
        try:
            return (self.prefix, kind, hardware.normalise(kind, raw))
        except NodeError:
            return (self.prefix, str(kind), str(raw))


@dataclass(frozen=True)
class Refused:
    """A device of a batch that could not be registered, and why."""

    hardware_id: object
    error: Exception


class DeviceService:
    """Registration and liveness for gateways, on the node's database."""

    def __init__(
        self, database: Database, settings: Settings, cache: ResolverCache | None = None
    ) -> None:
        self._database = database
        self._cache = cache
        self._node_prefix = settings.node_prefix
        self._offline_after = timedelta(seconds=settings.device_offline_after)
        self.liveness = Liveness(
            ttl=settings.device_liveness_ttl,
            republish_after=timedelta(seconds=settings.device_republish_after),
        )

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncSession]:
        """One unit of work: committed at the end, then evicted from this process's cache."""
        async with self._database.write_session() as session:
            yield session
            await session.commit()
        if self._cache is not None:
            evict_touched(session, self._cache)

    async def _register(
        self, session: AsyncSession, principal: Principal, prefix: str, registration: Registration
    ) -> Registered:
        return await devices.register_device(
            session,
            principal,
            prefix,
            registration,
            node_prefix=self._node_prefix,
            liveness=self.liveness,
        )

    async def register_each(self, requests: Sequence[Request]) -> list[Registered | Refused]:
        """Register many devices, each with its own credentials, in one transaction (one
        commit for the lot); a refused device does not keep the others from registering.

        Every check runs before a device's writes, so the writes need no savepoint each; if
        a write is refused all the same, the batch is redone with a savepoint per device.
        Devices are written in hardware-id order, so two gateway processes registering
        overlapping batches lock rows in the same order and cannot deadlock."""
        try:
            return await self._register_each(requests, careful=False)
        except _WriteRefused:
            return await self._register_each(requests, careful=True)

    async def _register_each(
        self, requests: Sequence[Request], *, careful: bool
    ) -> list[Registered | Refused]:
        order = sorted(range(len(requests)), key=lambda i: requests[i].sort_key)
        results: dict[int, Registered | Refused] = {}
        principals: dict[tuple[str, object, object], Principal | Exception] = {}
        planned: list[tuple[int, Principal, devices.Plan]] = []
        async with self._transaction() as session:
            for i in order:
                request = requests[i]
                try:
                    principal = await self._principal(session, principals, request)
                    if careful:
                        async with session.begin_nested():
                            results[i] = await self._register(
                                session, principal, request.prefix, request.registration
                            )
                        continue
                    plan = await devices.plan_registration(
                        session,
                        principal,
                        request.prefix,
                        request.registration,
                        node_prefix=self._node_prefix,
                    )
                except IdnodeError as exc:
                    results[i] = Refused(request.registration.hardware_id, exc)
                    continue
                planned.append((i, principal, plan))
            try:
                written = await devices.apply_registrations(
                    session,
                    [(principal, plan) for _, principal, plan in planned],
                    node_prefix=self._node_prefix,
                    liveness=self.liveness,
                )
            except IdnodeError as exc:
                raise _WriteRefused from exc  # rolls the batch back
            results.update((i, result) for (i, _, _), result in zip(planned, written, strict=True))
        return [results[i] for i in range(len(requests))]

    @staticmethod
    async def _principal(
        session: AsyncSession,
        known: dict[tuple[str, object, object], Principal | Exception],
        request: Request,
    ) -> Principal:
        """Credentials checked once per transaction (the key is read afresh by each one, so
        revocation still applies from the next batch on)."""
        credentials = (request.prefix, request.key, request.secret)
        if credentials not in known:
            try:
                known[credentials] = await provisioning.authenticate_device(
                    session, request.prefix, key=request.key, secret=request.secret
                )
            except IdnodeError as exc:
                known[credentials] = exc
        found = known[credentials]
        if isinstance(found, Exception):
            raise found
        return found

    async def register_for_application(
        self, application_id: str, registration: Registration
    ) -> Registered | None:
        """Register a LoRaWAN device of a mapped application; None (nothing created) when the
        application is not mapped or its key is revoked."""
        async with self._transaction() as session:
            owner = await lorawan.application_owner(session, application_id)
            if owner is None:
                return None
            prefix, principal = owner
            return await self._register(session, principal, prefix, registration)

    async def application_prefix(self, application_id: str) -> str | None:
        """The prefix a mapped, usable application's devices live under."""
        async with self._database.read_session() as session:
            owner = await lorawan.application_owner(session, application_id)
        return owner[0] if owner is not None else None

    async def register_for_platform(
        self, prefix: str, platform: str, registration: Registration
    ) -> Registered | None:
        """Register a device an NB-IoT platform pushed, as the enterprise's account on that
        platform; None (nothing created) when the account is gone or its key is revoked."""
        async with self._transaction() as session:
            account = await nbiot.account(session, prefix, platform)
            if account is None:
                return None
            return await self._register(session, account.principal, account.prefix, registration)

    async def platform_device_offline(self, prefix: str, platform: str, imei: str) -> bool | None:
        """Show offline a device an NB-IoT platform reported gone (False: no such device);
        None (nothing changed) when the enterprise's account on the platform is gone or its
        key is revoked."""
        async with self._transaction() as session:
            account = await nbiot.account(session, prefix, platform)
            if account is None:
                return None
            return await liveness.mark_device_offline(
                session,
                prefix=account.prefix,
                kind="imei",
                hardware_id=imei,
                node_prefix=self._node_prefix,
                liveness=self.liveness,
            )

    async def platform_account(self, prefix: str, platform: str) -> PlatformAccount | None:
        async with self._database.read_session() as session:
            return await nbiot.account(session, prefix, platform)

    async def register_many(
        self, prefix: str, registrations: Sequence[Registration], *, key: object, secret: object
    ) -> list[Registered | Refused]:
        """Register up to ``MAX_BATCH`` devices in one transaction, one result each: a device
        that is refused does not keep the others from registering."""
        if len(registrations) > MAX_BATCH:
            raise InvalidRequest(
                f"at most {MAX_BATCH} devices per message, not {len(registrations)}"
            )
        async with self._database.read_session() as session:
            # Bad credentials refuse the whole message, not each device in it.
            await provisioning.authenticate_device(session, prefix, key=key, secret=secret)
        return await self.register_each(
            [Request(prefix, key, secret, registration) for registration in registrations]
        )

    async def apply_heartbeats(self, beats: Sequence[Heartbeat]) -> HeartbeatOutcome:
        async with self._transaction() as session:
            return await liveness.apply_heartbeats(
                session, beats, node_prefix=self._node_prefix, liveness=self.liveness
            )

    async def mark_offline(self) -> list[str]:
        """Show devices silent for longer than IDNODE_DEVICE_OFFLINE_AFTER as offline."""
        async with self._transaction() as session:
            return await liveness.mark_offline(
                session,
                silent_for=self._offline_after,
                node_prefix=self._node_prefix,
                liveness=self.liveness,
            )
