"""The MQTT device gateway: one named task that connects, subscribes and serves devices.

It reconnects inside ``while True`` catching only ``aiomqtt.MqttError`` with capped back-off.
Registrations are queued and taken in batches by IDNODE_MQTT_CONCURRENCY workers, one
transaction per batch; heartbeats go to the batcher. A bad message gets a rejected reply when
its topic names who sent it, is counted, and never stops the loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import aiomqtt
import orjson
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy.exc import SQLAlchemyError

from app import errors as node
from app.registry import clock
from app.registry.devices import Registered
from app.registry.liveness import Heartbeat
from app.settings import Settings
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
Pending = tuple[aiomqtt.Client, aiomqtt.Message, Route]
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

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self.heartbeats.run(), name="gateways.mqtt.heartbeats")
            for n in range(self._settings.mqtt_concurrency):
                tasks.create_task(
                    self._registration_worker(), name=f"gateways.mqtt.registrations-{n}"
                )
            tasks.create_task(self._serve(), name="gateways.mqtt.connection")

    async def _serve(self) -> None:
        backoff = 0.2
        while True:
            try:
                async with self._client as client:
                    others = [self.topics.shared(f) for f, _ in self._handlers]
                    for topic_filter in [*self.topics.filters, *others]:
                        await client.subscribe(topic_filter, qos=1)
                    self.connected.set()
                    log.info("gateways.mqtt.connected", extra={"broker": str(self.address)})
                    backoff = 0.2
                    async for message in client.messages:
                        await self._dispatch(client, message)
            except aiomqtt.MqttError as exc:
                self.connected.clear()
                log.warning(
                    "gateways.mqtt.reconnecting",
                    extra={"broker": str(self.address), "error": str(exc), "in": backoff},
                )
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._settings.mqtt_max_backoff)

    def attach(self, topic_filter: str, handler: Handler) -> None:
        """Also serve ``topic_filter`` (another protocol on the same connection, e.g.
        ChirpStack events); ``handler`` runs like a registration, concurrently."""
        self._handlers.append((topic_filter, handler))

    async def _dispatch(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        route = self.topics.route(message.topic.value)
        if route is not None and route.action == "heartbeat":
            await self._heartbeat(client, message, route)
            return
        if route is not None and route.action == "register":
            await self._registrations.put((client, message, route))
            return
        if route is not None:
            work: Coroutine[Any, Any, None] = self._register_gateway(client, message, route)
        else:
            handler = next((h for f, h in self._handlers if message.topic.matches(f)), None)
            if handler is None:
                return  # our own replies, or another application's traffic
            work = handler(message)
        await self._slots.acquire()
        task = asyncio.create_task(work)
        self._running.add(task)
        task.add_done_callback(self._finished)

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
            await self._register_all(batch)

    async def _register_all(self, batch: list[Pending]) -> None:
        replies: list[Coroutine[Any, Any, None]] = []
        valid: list[tuple[aiomqtt.Client, aiomqtt.Message, dict[str, Any], Request]] = []
        for client, message, route in batch:
            body: dict[str, Any] | None = None
            try:
                body = protocol.decode(
                    _bytes(message.payload), limit=self._settings.mqtt_max_payload
                )
                request = Request(
                    protocol.canonical_prefix(route.prefix),
                    body.get("provisionKey"),
                    body.get("provisionSecret"),
                    protocol.registration(body, route.name),
                )
                valid.append((client, message, body, request))
            except DomainError as exc:
                replies.append(self._reject(client, message, protocol.request_id(body), exc))
        results: Sequence[Registered | Refused]
        try:
            results = await self.devices.register_each([v[3] for v in valid])
        except (SQLAlchemyError, OSError) as exc:  # the database is away: the devices retry
            results = [Refused(v[3].registration.hardware_id, exc) for v in valid]
        for (client, message, body, _), result in zip(valid, results, strict=True):
            request_id = protocol.request_id(body)
            if isinstance(result, Refused):
                replies.append(self._reject(client, message, request_id, result.error))
                continue
            self._count(result)
            accepted = protocol.accepted(request_id, result.handle, result.created)
            replies.append(self._reply(client, message, "accepted", accepted))
        await asyncio.gather(*replies)

    async def _register_gateway(
        self, client: aiomqtt.Client, message: aiomqtt.Message, route: Route
    ) -> None:
        body: dict[str, Any] | None = None
        try:
            payload = _bytes(message.payload)
            body = protocol.decode(payload, limit=self._settings.mqtt_max_payload)
            prefix = protocol.canonical_prefix(route.prefix)
            key, secret = body.get("provisionKey"), body.get("provisionSecret")
            reply = await self._register_batch(body, prefix, route.name, key, secret)
        except MessageError as exc:
            await self._reject(client, message, protocol.request_id(body), exc)
            return
        await self._reply(client, message, "accepted", reply)

    async def _register_batch(
        self, body: dict[str, Any], prefix: str, gateway_id: str, key: object, secret: object
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
        results = await self.devices.register_many(prefix, registrations, key=key, secret=secret)
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
            prefix = protocol.canonical_prefix(route.prefix)
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
