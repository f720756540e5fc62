"""The MQTT device gateway: named tasks (run by ``app.supervisor``) that connect, subscribe
and serve devices.

It reconnects inside ``while True`` catching only ``aiomqtt.MqttError`` with capped back-off.
Registrations are queued and taken in batches by IDNODE_MQTT_CONCURRENCY workers, one
transaction per batch; heartbeats go to the batcher. A bad message gets a rejected reply when
its topic names who sent it, is counted, and never stops the loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

import aiomqtt
import orjson
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy.exc import SQLAlchemyError

from app import errors as node
from app.backoff import jittered
from app.registry import clock
from app.registry.devices import Heartbeat, Registered
from app.settings import Settings
from app.throttle import AttemptLimiter
from gateways.devices import DeviceService, Refused, Request
from gateways.mqtt import protocol
from gateways.mqtt.connection import BrokerAddress, client_for
from gateways.mqtt.heartbeats import HeartbeatBatcher
from gateways.mqtt.protocol import Route, Topics
from gateways.mqtt.stats import Counters
from resolver.errors import IdnodeError

log = logging.getLogger("gateways.mqtt")
DomainError = IdnodeError
# Expected failures of one message: the domain's refusals, and the database being away.
MessageError = (IdnodeError, SQLAlchemyError, OSError)
RECONNECT_AFTER = 0.2  # seconds, after the first failure; doubling up to IDNODE_MQTT_MAX_BACKOFF
Pending = tuple[aiomqtt.Client, aiomqtt.Message, Route]


@dataclass(frozen=True)
class _Asking:
    """A ``register`` message that decoded: where to reply, and the device's request."""

    client: aiomqtt.Client
    message: aiomqtt.Message
    body: dict[str, Any]
    request: Request


Handler = Callable[[aiomqtt.Message], Coroutine[Any, Any, None]]


class MqttGateway:
    """Serves the device protocol on one broker connection (see ``gateways.mqtt.protocol``)."""

    def __init__(
        self,
        devices: DeviceService,
        settings: Settings,
        address: BrokerAddress,
    ) -> None:
        self.devices = devices
        self.address = address
        self.counters = Counters()
        self.connected = asyncio.Event()
        self.topics = Topics(settings.mqtt_topic_root, settings.mqtt_shared_group)
        # The broker does not tell a client's address: wrong credentials count per key.
        self.attempts = AttemptLimiter(
            per_address=settings.auth_failures_per_address,
            per_credential=settings.auth_failures_per_credential,
        )
        self._settings = settings
        self._handlers: list[tuple[str, Handler]] = []
        self._client = client_for(address, settings)
        self._slots = asyncio.Semaphore(settings.mqtt_concurrency)
        self._running: set[asyncio.Task[None]] = set()
        self._registrations: asyncio.Queue[Pending] = asyncio.Queue(
            settings.mqtt_registration_batch * settings.mqtt_concurrency
        )
        self.heartbeats = HeartbeatBatcher(
            devices,
            self.counters,
            interval=settings.heartbeat_flush_interval,
            batch_size=settings.heartbeat_batch_size,
            offline_sweep_every=min(settings.device_offline_after / 2, 5.0),
            on_unknown=self._unknown_devices,
        )

    def loops(self) -> dict[str, Callable[[], Coroutine[Any, Any, None]]]:
        """The gateway's long-lived tasks by name, for the supervisor to run (and restart
        one that crashes): the heartbeat flusher, the registration workers, and last the
        connection that feeds them."""
        workers = {
            f"gateways.mqtt.registrations-{n}": self._registration_worker
            for n in range(self._settings.mqtt_concurrency)
        }
        return {
            "gateways.mqtt.heartbeats": self.heartbeats.run,
            **workers,
            "gateways.mqtt.connection": self._serve,
        }

    async def _serve(self) -> None:
        failures = 0
        while True:
            lost: aiomqtt.MqttError | None = None
            try:
                async with self._client as client:
                    others = [self.topics.shared(f) for f, _ in self._handlers]
                    for topic_filter in [*self.topics.filters, *others]:
                        await client.subscribe(topic_filter, qos=1)
                    self.connected.set()
                    log.info("gateways.mqtt.connected", extra={"broker": str(self.address)})
                    failures = 0
                    async for message in client.messages:
                        await self._dispatch(client, message)
            except aiomqtt.MqttError as exc:
                self.connected.clear()
                lost = exc
            failures += 1
            delay = jittered(failures, cap=self._settings.mqtt_max_backoff, first=RECONNECT_AFTER)
            if lost is not None:
                log.warning(
                    "gateways.mqtt.reconnecting",
                    extra={"broker": str(self.address), "error": str(lost), "in": delay},
                )
            await asyncio.sleep(delay)

    def attach(self, topic_filter: str, handler: Handler) -> None:
        """Also serve ``topic_filter`` (another protocol on the same connection, e.g.
        ChirpStack events); ``handler`` runs like a registration, concurrently."""
        self._handlers.append((topic_filter, handler))

    async def _dispatch(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        route = self.topics.route(message.topic.value)
        if route is not None and route.action == "heartbeat":
            await self._guarded(self._heartbeat(client, message, route), client, message)
            return
        if route is not None and route.action == "register":
            await self._registrations.put((client, message, route))
            return
        if route is not None:
            work: Coroutine[Any, Any, None] = self._register_batch(client, message, route)
        else:
            handler = next((h for f, h in self._handlers if message.topic.matches(f)), None)
            if handler is None:
                return  # our own replies, or another application's traffic
            work = handler(message)
        await self._slots.acquire()
        task = asyncio.create_task(self._guarded(work, client, message, reply=route is not None))
        self._running.add(task)
        task.add_done_callback(self._finished)

    async def _guarded(
        self,
        work: Coroutine[Any, Any, None],
        client: aiomqtt.Client,
        message: aiomqtt.Message,
        *,
        reply: bool = True,
    ) -> None:
        """Handle one message; if the handler fails in a way nobody foresaw, the message is
        answered ``rejected`` (InternalError) and dropped: never retried, never a stop."""
        try:
            await work
        except Exception as exc:  # whatever it was, it ends with this message
            self._failed(exc, message.topic.value)
            if reply:
                await self._reject(client, message, None, exc)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._slots.release()

    async def _registration_worker(self) -> None:
        """Takes every registration waiting (up to IDNODE_MQTT_REGISTRATION_BATCH) into one
        transaction: under load one commit serves many devices, when idle each goes alone."""
        while True:
            batch = [await self._registrations.get()]
            while len(batch) < self._settings.mqtt_registration_batch:
                try:
                    batch.append(self._registrations.get_nowait())
                except asyncio.QueueEmpty:
                    break
            await self._register_devices(batch)

    async def _register_devices(self, batch: list[Pending]) -> None:
        """``register`` messages, one device each with its own credentials: one transaction
        for those that decode, one reply per message."""
        replies: list[Coroutine[Any, Any, None]] = []
        valid: list[_Asking] = []
        for client, message, route in batch:
            body: dict[str, Any] | None = None
            try:
                body = protocol.decode(
                    _bytes(message.payload), limit=self._settings.mqtt_max_payload
                )
                key, secret = protocol.credentials(body)
                prefix = protocol.canonical_prefix(protocol.checked(route).prefix)
                self.attempts.check("mqtt", address=None, credential=f"{prefix}/{key}")
                request = Request(prefix, key, secret, protocol.registration(body, route.name))
                valid.append(_Asking(client, message, body, request))
            except DomainError as exc:
                replies.append(self._reject(client, message, protocol.request_id(body), exc))
        results = await self._register_isolating([asking.request for asking in valid])
        for asking, result in zip(valid, results, strict=True):
            request_id = protocol.request_id(asking.body)
            if isinstance(result, Refused):
                self._throttle(asking.request.prefix, asking.request.key, result.error)
                replies.append(
                    self._reject(asking.client, asking.message, request_id, result.error)
                )
                continue
            self._count(result)
            accepted = protocol.accepted(request_id, result.handle, result.created)
            replies.append(self._reply(asking.client, asking.message, "accepted", accepted))
        await asyncio.gather(*replies)

    async def _register_batch(
        self, client: aiomqtt.Client, message: aiomqtt.Message, route: Route
    ) -> None:
        """A gateway's message: many devices under one set of credentials, one reply."""
        body: dict[str, Any] | None = None
        try:
            payload = _bytes(message.payload)
            body = protocol.decode(payload, limit=self._settings.mqtt_max_payload)
            prefix = protocol.canonical_prefix(protocol.checked(route).prefix)
            key, secret = protocol.credentials(body)
            self.attempts.check("mqtt", address=None, credential=f"{prefix}/{key}")
            try:
                reply = await self._batch_reply(body, prefix, route.name, key, secret)
            except node.AuthenticationFailed as exc:
                self._throttle(prefix, key, exc)
                raise
        except MessageError as exc:
            await self._reject(client, message, protocol.request_id(body), exc)
            return
        await self._reply(client, message, "accepted", reply)

    async def _batch_reply(
        self, body: dict[str, Any], prefix: str, gateway_id: str, key: str, secret: str
    ) -> dict[str, Any]:
        entries = body.get("devices")
        if not isinstance(entries, list) or not entries:
            raise protocol.MalformedMessage("devices must be a non-empty list")
        registrations = []
        for position, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise protocol.MalformedMessage(f"devices[{position}] must be a JSON object")
            registrations.append(
                protocol.registration(entry, entry.get("hardwareId"), gateway_id=gateway_id)
            )
        results = await self.devices.register_batch(prefix, registrations, key=key, secret=secret)
        out = []
        for registration, result in zip(registrations, results, strict=True):
            if isinstance(result, Refused):
                self.counters.rejected += 1
                refusal = protocol.rejected(None, result.error)
                del refusal["requestId"]
                out.append({"hardwareId": registration.hardware_id, **refusal})
            else:
                self._count(result)
                out.append(
                    {
                        "hardwareId": registration.hardware_id,
                        "handle": result.handle,
                        "created": result.created,
                    }
                )
        return {"requestId": protocol.request_id(body), "results": out}

    async def _register_isolating(
        self, requests: Sequence[Request]
    ) -> Sequence[Registered | Refused]:
        """One transaction for ``requests``; when it fails in a way nobody foresaw, each is
        tried alone, so only the message that broke it is refused (InternalError)."""
        try:
            return await self.devices.register_devices(requests)
        except (node.DatabaseUnavailable, SQLAlchemyError, OSError) as exc:  # devices retry
            return [Refused(r.registration.hardware_id, exc) for r in requests]
        except Exception as exc:
            if len(requests) == 1:
                self._failed(exc, requests[0].registration.hardware_id)
                return [Refused(requests[0].registration.hardware_id, exc)]
        return [result for r in requests for result in await self._register_isolating([r])]

    def _throttle(self, prefix: str, key: str, error: Exception) -> None:
        """Count wrong provisioning credentials: a key guessed at is refused for a while."""
        if isinstance(error, node.AuthenticationFailed):
            credential = f"{prefix}/{key}"
            self.attempts.failed("mqtt", address=None, credential=credential, reason=error.message)

    def _failed(self, error: Exception, where: str) -> None:
        """A handler fault: logged with its traceback at once, counted, the message dropped."""
        self.counters.handler_failures += 1
        log.error("gateways.mqtt.handler_failed", extra={"about": where}, exc_info=error)

    def _count(self, done: Registered) -> None:
        if done.created:
            self.counters.registered += 1
        else:
            self.counters.replayed += 1

    async def _heartbeat(
        self, client: aiomqtt.Client, message: aiomqtt.Message, route: Route
    ) -> None:
        try:
            payload = _bytes(message.payload)
            body = protocol.decode(payload, limit=self._settings.mqtt_max_payload, optional=True)
            prefix = protocol.canonical_prefix(protocol.checked(route).prefix)
            beat = protocol.heartbeat(prefix, route.name, body, clock.now())
        except DomainError as exc:
            await self._reject(client, message, None, exc)
            return
        self.counters.heartbeats_received += 1
        self.heartbeats.add(beat)

    def _unknown_devices(self, beats: Sequence[Heartbeat]) -> None:
        """Heartbeats of devices never registered create nothing; the device is told."""
        client = self._client
        for beat in beats:
            topic = f"{self.topics.root}/{beat.prefix}/devices/{beat.hardware_id}/heartbeat"
            error = node.DeviceNotFound(
                f"no device {beat.hardware_id} is registered under {beat.prefix}; register first"
            )
            task = asyncio.create_task(
                self._publish(client, f"{topic}/rejected", protocol.rejected(None, error))
            )
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _reject(
        self,
        client: aiomqtt.Client,
        message: aiomqtt.Message,
        request: str | None,
        error: Exception,
    ) -> None:
        if isinstance(error, protocol.MalformedMessage | node.RequestTooLarge):
            self.counters.malformed += 1
        else:
            self.counters.rejected += 1
        if not isinstance(error, DomainError):
            log.warning("gateways.mqtt.message_failed", extra={"error": repr(error)})
        await self._reply(client, message, "rejected", protocol.rejected(request, error))

    async def _reply(
        self, client: aiomqtt.Client, message: aiomqtt.Message, outcome: str, body: dict[str, Any]
    ) -> None:
        """To the MQTT 5 Response Topic with the request's Correlation Data when it sent one,
        else to the request topic + ``/accepted`` or ``/rejected``."""
        request = message.properties
        response_topic = getattr(request, "ResponseTopic", None) if request else None
        if response_topic:
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            correlation = getattr(request, "CorrelationData", None)
            if correlation is not None:
                properties.CorrelationData = correlation
            await self._publish(client, response_topic, {**body, "outcome": outcome}, properties)
            return
        await self._publish(client, f"{message.topic.value}/{outcome}", body)

    async def _publish(
        self,
        client: aiomqtt.Client,
        topic: str,
        body: dict[str, Any],
        properties: Properties | None = None,
    ) -> None:
        try:
            await client.publish(topic, orjson.dumps(body), qos=1, properties=properties)
        except aiomqtt.MqttError as exc:
            # The connection dropped; the device retries and registration is idempotent.
            self.counters.reply_failures += 1
            log.info("gateways.mqtt.reply_lost", extra={"topic": topic, "error": str(exc)})


def _bytes(payload: Any) -> bytes:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    if isinstance(payload, str):
        return payload.encode()
    return b"" if payload is None else str(payload).encode()
