"""The resources the node's lifespan (``app.main``) and ``idnode gateway`` run, each an async
context manager that starts its tasks under the supervisor and stops them in order."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prometheus_client import start_http_server

from app import metrics, monitoring
from app.monitoring import MetricsPump, Sources
from app.node import Node
from app.registry.identifiers import ScanRecorder
from app.reporting.runner import Reporting
from app.settings import Settings
from app.storage.database import Database
from app.supervisor import Supervisor
from gateways.devices import DeviceService
from gateways.handle import PortTaken as HandlePortTaken
from gateways.handle import native_listener
from gateways.lorawan import ChirpStackEvents
from gateways.mqtt import BrokerAddress, EmbeddedBroker, MqttGateway, PortTaken
from gateways.mqtt.broker import HOST as EMBEDDED_HOST
from gateways.nbiot import IngestQueue
from gateways.nbiot.ingest import STOP_GRACE
from resolver.cache import ResolverCache


@asynccontextmanager
async def device_gateway(
    settings: Settings, database: Database, cache: ResolverCache | None, tasks: Supervisor
) -> AsyncIterator[MqttGateway | None]:
    """The MQTT device gateway's tasks under ``tasks``, when a broker is configured:
    IDNODE_MQTT_URL, or the embedded broker (``idnode serve``). Yields None when there is
    none."""
    broker = None
    if settings.mqtt_url:
        address = BrokerAddress.parse(settings.mqtt_url)
    elif settings.embedded_broker:
        broker = EmbeddedBroker(settings.embedded_broker_port)
        try:
            await broker.start()
        except PortTaken as exc:
            say(
                f"idnode: MQTT port {exc} (another broker?); device gateway off. "
                "Set IDNODE_MQTT_URL=mqtt://127.0.0.1:1883 to use that broker, or "
                "IDNODE_EMBEDDED_BROKER_PORT for another port"
            )
            yield None
            return
        say(f"idnode: embedded MQTT broker on mqtt://127.0.0.1:{broker.port} (device gateway)")
        address = BrokerAddress(EMBEDDED_HOST, broker.port, mqtt5=False)
    else:
        yield None
        return
    service = DeviceService(database, settings, cache)
    gateway = MqttGateway(service, settings, address)
    chirpstack = ChirpStackEvents(
        service, gateway.heartbeats, gateway.counters, max_payload=settings.mqtt_max_payload
    )
    gateway.attach(settings.chirpstack_topic, chirpstack.handle)
    running = [tasks.start(name, loop) for name, loop in gateway.loops().items()]
    try:
        yield gateway
    finally:
        for supervised in reversed(running):  # the connection first: no message half-served
            await supervised.stop()
        if broker is not None:
            await broker.stop()


@asynccontextmanager
async def handle_door(node: Node) -> AsyncIterator[None]:
    """The Handle protocol listener (TCP and UDP) when IDNODE_HANDLE_HOST is set; a port that
    is taken leaves the node serving HTTP, with a line saying which setting to change."""
    try:
        async with native_listener(node):
            yield
    except HandlePortTaken as exc:
        say(
            f"idnode: Handle protocol port {exc} (another node?); native listener off. "
            "Set IDNODE_HANDLE_PORT (or --handle-port) to another port, 0 to turn it off"
        )
        yield


@asynccontextmanager
async def metrics_pump(
    settings: Settings,
    node: Node,
    tasks: Supervisor,
    gateway: MqttGateway | None,
    ingest: IngestQueue,
    reports: Reporting,
) -> AsyncIterator[MetricsPump | None]:
    """The task moving this process's counts into the Prometheus metrics (None when off)."""
    if not settings.metrics:
        yield None
        return
    sources = Sources(
        node.database,
        node,
        mqtt=lambda: gateway.counters if gateway is not None else None,
        nbiot=lambda: ingest,
        delivery_errors=lambda: reports.reporter.errors if reports.reporter else 0,
    )
    try:
        async with _pumping(settings, sources, tasks) as pump:
            yield pump
    finally:
        monitoring.stopped()


@asynccontextmanager
async def _pumping(
    settings: Settings, sources: Sources, tasks: Supervisor
) -> AsyncIterator[MetricsPump]:
    """A :class:`MetricsPump` running as a task; its last counts flushed when it stops."""
    pump = MetricsPump(
        sources, interval=settings.metrics_interval, census_interval=settings.census_interval
    )
    running = tasks.start("monitoring.metrics", pump.run)
    try:
        yield pump
    finally:
        await running.stop()
        pump.flush()


@asynccontextmanager
async def scan_recording(recorder: ScanRecorder, tasks: Supervisor) -> AsyncIterator[None]:
    """The task writing page scans in batches; what is pending is written when it stops."""
    running = tasks.start("app.scans", recorder.run)
    try:
        yield
    finally:
        await running.stop()
        await recorder.flush()


@asynccontextmanager
async def nbiot_ingest(
    settings: Settings, database: Database, cache: ResolverCache | None, tasks: Supervisor
) -> AsyncIterator[IngestQueue]:
    """The worker applying OneNET/CTWing pushes that the ingest endpoints queued (in the
    database: what it has not applied when it stops is applied by the next one)."""
    queue = IngestQueue(
        database,
        DeviceService(database, settings, cache),
        limit=settings.nbiot_queue_limit,
        poll_interval=settings.nbiot_poll_interval,
    )
    running = tasks.start("gateways.nbiot", queue.run)
    try:
        yield queue
    finally:
        # Between two pushes, not in the middle of one's transaction: a write cut short on
        # SQLite could hold the file's lock past the hand-back below.
        queue.stop_soon()
        await running.stop(grace=STOP_GRACE)
        await queue.close()


class MetricsPortTaken(Exception):
    """The gateway's metrics port cannot be listened on."""


@asynccontextmanager
async def gateway_metrics(
    settings: Settings, database: Database, gateway: MqttGateway | None, tasks: Supervisor
) -> AsyncIterator[None]:
    """``idnode gateway``'s own ``GET /metrics`` on IDNODE_GATEWAY_METRICS_PORT: the MQTT
    messages and registrations of this process, which no node process sees."""
    port = settings.gateway_metrics_port
    if port is None or not settings.metrics:
        yield
        return
    sources = Sources(
        database,
        None,
        mqtt=lambda: gateway.counters if gateway is not None else None,
        nbiot=lambda: None,
        delivery_errors=lambda: 0,
    )
    try:
        server, _thread = start_http_server(
            port, settings.gateway_metrics_host, registry=metrics.registry()
        )
    except OSError as exc:
        raise MetricsPortTaken(
            f"cannot serve metrics on {settings.gateway_metrics_host}:{port}: {exc.strerror}"
        ) from exc
    try:
        async with _pumping(settings, sources, tasks):
            yield
    finally:
        server.shutdown()
        server.server_close()


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
