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
from app.errors import InvalidRequest, ServiceUnavailable
from app.registry.devices import (
    Heartbeat,
    HeartbeatOutcome,
    Liveness,
    PlatformAccount,
    Registered,
    Registration,
    liveness,
    lorawan,
    nbiot,
    provisioning,
)
from app.registry.devices import registration as devices
from app.settings import Settings
from app.storage.database import Database
from app.storage.invalidation import evict_touched
from app.vault import Vault
from resolver.cache import ResolverCache
from resolver.errors import IdnodeError

MAX_BATCH = 1000


class _WriteRefused(Exception):
    """A write was refused after its checks passed: redo the batch device by device."""


@dataclass(frozen=True)
class Request:
    """One device asking to register with a provisioning key."""

    prefix: str
    key: str
    secret: str
    registration: Registration


@dataclass(frozen=True)
class Refused:
    """A device of a batch that could not be registered, and why."""

    hardware_id: object
    error: Exception


@dataclass(frozen=True)
class _Planned:
    """A device whose checks passed: where its result goes, who registers it, its plan."""

    index: int
    principal: Principal
    plan: devices.Plan

    @property
    def order(self) -> tuple[str, str, str]:
        """Devices are written in this order (prefix, kind, normalised hardware id), so two
        gateway processes registering overlapping batches lock rows in the same order."""
        return (self.plan.handle.prefix, self.plan.kind, self.plan.canonical)


class DeviceService:
    """Registration and liveness for gateways, on the node's database."""

    def __init__(
        self, database: Database, settings: Settings, cache: ResolverCache | None = None
    ) -> None:
        self._database = database
        self._cache = cache
        self._node_prefix = settings.node_prefix
        self._vault = Vault(settings.node_key_file)  # NB-IoT push tokens, read on first use
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

    async def _register_one(
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

    async def register_devices(self, requests: Sequence[Request]) -> list[Registered | Refused]:
        """Devices each registering with their own credentials (the MQTT ``register``
        messages waiting together), in one transaction: one commit for the lot; a refused
        device, credentials included, does not keep the others from registering."""
        return await self._register(requests, batch=False)

    async def register_batch(
        self, prefix: str, registrations: Sequence[Registration], *, key: str, secret: str
    ) -> list[Registered | Refused]:
        """A gateway's batch: up to ``MAX_BATCH`` devices under one set of credentials, in
        one transaction, one result each. Wrong credentials refuse the whole batch (raised);
        a device that is refused does not keep the others from registering."""
        if len(registrations) > MAX_BATCH:
            raise InvalidRequest(
                f"at most {MAX_BATCH} devices per message, not {len(registrations)}"
            )
        requests = [Request(prefix, key, secret, registration) for registration in registrations]
        return await self._register(requests, batch=True)

    async def _register(
        self, requests: Sequence[Request], *, batch: bool
    ) -> list[Registered | Refused]:
        """Every check runs before a device's writes, so the writes need no savepoint each; if
        a write is refused all the same, the lot is redone with a savepoint per device."""
        try:
            return await self._write(requests, batch=batch, careful=False)
        except _WriteRefused:
            return await self._write(requests, batch=batch, careful=True)

    async def _write(
        self, requests: Sequence[Request], *, batch: bool, careful: bool
    ) -> list[Registered | Refused]:
        results: dict[int, Registered | Refused] = {}
        async with self._transaction() as session:
            planned = await self._plan(session, requests, results, batch=batch)
            planned.sort(key=lambda p: p.order)
            if careful:
                for p in planned:
                    results[p.index] = await self._apply_alone(session, p)
            else:
                try:
                    written = await devices.apply_registrations(
                        session,
                        [(p.principal, p.plan) for p in planned],
                        node_prefix=self._node_prefix,
                        liveness=self.liveness,
                    )
                except ServiceUnavailable:
                    raise
                except IdnodeError as exc:
                    raise _WriteRefused from exc  # rolls the lot back
                results.update(
                    (p.index, result) for p, result in zip(planned, written, strict=True)
                )
        return [results[i] for i in range(len(requests))]

    async def _plan(
        self,
        session: AsyncSession,
        requests: Sequence[Request],
        refused: dict[int, Registered | Refused],
        *,
        batch: bool,
    ) -> list[_Planned]:
        """Authenticate (once per set of credentials) and check each device; what is refused
        goes into ``refused``. In a batch, a credentials error is raised for the whole."""
        principals: dict[tuple[str, str, str], Principal | Exception] = {}
        planned = []
        for i, request in enumerate(requests):
            try:
                principal = await self._principal(session, principals, request)
            except ServiceUnavailable:
                raise  # not this device's fault: the lot fails, the devices retry
            except IdnodeError as exc:
                if batch:
                    raise  # bad credentials refuse the whole message, not each device
                refused[i] = Refused(request.registration.hardware_id, exc)
                continue
            try:
                plan = await devices.plan_registration(
                    session,
                    principal,
                    request.prefix,
                    request.registration,
                    node_prefix=self._node_prefix,
                )
            except ServiceUnavailable:
                raise
            except IdnodeError as exc:
                refused[i] = Refused(request.registration.hardware_id, exc)
                continue
            planned.append(_Planned(i, principal, plan))
        return planned

    async def _apply_alone(self, session: AsyncSession, planned: _Planned) -> Registered | Refused:
        """One device's writes under a savepoint: a refused write undoes only its own."""
        try:
            async with session.begin_nested():
                return await devices.apply_registration(
                    session,
                    planned.principal,
                    planned.plan,
                    node_prefix=self._node_prefix,
                    liveness=self.liveness,
                )
        except ServiceUnavailable:
            raise
        except IdnodeError as exc:
            return Refused(planned.plan.registration.hardware_id, exc)

    @staticmethod
    async def _principal(
        session: AsyncSession,
        known: dict[tuple[str, str, str], Principal | Exception],
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
            return await self._register_one(session, principal, prefix, registration)

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
            account = await nbiot.account(session, prefix, platform, vault=self._vault)
            if account is None:
                return None
            return await self._register_one(
                session, account.principal, account.prefix, registration
            )

    async def platform_device_offline(self, prefix: str, platform: str, imei: str) -> bool | None:
        """Show offline a device an NB-IoT platform reported gone (False: no such device);
        None (nothing changed) when the enterprise's account on the platform is gone or its
        key is revoked."""
        async with self._transaction() as session:
            account = await nbiot.account(session, prefix, platform, vault=self._vault)
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
            return await nbiot.account(session, prefix, platform, vault=self._vault)

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
