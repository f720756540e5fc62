"""The composition root: ``create_app()`` builds the node; its lifespan owns every resource."""

from __future__ import annotations

import contextlib
import secrets
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import jinja2
from fastapi import Depends, FastAPI
from prometheus_client import CollectorRegistry, start_http_server
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from app import logs, metrics, monitoring
from app.api import (
    batches,
    contract,
    dashboard,
    devices,
    enterprises,
    errors,
    grants,
    handles,
    history,
    identifiers,
    node,
    proxy,
    recalls,
    snms_users,
    templates,
)
from app.api import monitoring as monitoring_api
from app.api.bodies import BodyGuard
from app.api.deps import plain_parameters
from app.api.fast import FastResolve
from app.dashboard import Dashboard, RecentErrors, Sampler, Sessions
from app.i18n import Languages
from app.monitoring import MetricsPump, Sources
from app.node import Node
from app.registry import catalog
from app.registry.recalls import RecallingStore
from app.registry.scans import ScanRecorder
from app.reporting.runner import Reporting, reporting
from app.settings import Settings
from app.snms.endpoints import router as snms_router
from app.storage.database import Database
from app.storage.invalidation import PostgresListener, SqliteWatcher
from app.supervisor import Supervisor
from app.throttle import AttemptLimiter
from gateways import nbiot
from gateways.devices import DeviceService
from gateways.handle import PortTaken as HandlePortTaken
from gateways.handle import native_listener
from gateways.lorawan import ChirpStackEvents
from gateways.mqtt import BrokerAddress, EmbeddedBroker, MqttGateway, PortTaken
from gateways.mqtt.broker import HOST as EMBEDDED_HOST
from gateways.nbiot import IngestQueue
from resolver.cache import ResolverCache
from resolver.engine import Resolver
from resolver.handle_protocol.remote import HandleProtocolRemote, Remotes
from resolver.stats import ResolveStats
from resolver.upstream import HandleRestClient

VERSION = "0.1.0"
# Servers' own loggers that do not propagate to the root logger (the dashboard's recent
# errors listen there too).
SERVER_LOGGERS = ("uvicorn.error", "_granian")


class NodeApp(FastAPI):
    """FastAPI with the lean resolve path (``app/api/fast.py``) in front of everything, and
    request ids outside everything (so even the last-resort error handler's line has one)."""

    lean: FastResolve | None = None
    request_ids: logs.RequestIds
    bodies: BodyGuard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.lean is not None and await self.lean(scope, send):
            return
        await logs.RequestIdMiddleware(self.bodies, self.request_ids)(scope, receive, send)

    async def routed(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The node's ASGI app. Nothing is connected until the lifespan starts."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        logs.configure(settings.log_format, settings.log_level)
        database = Database(settings)
        async with database.write_session() as session:
            await catalog.ensure_bundled(session, node_prefix=settings.node_prefix)
            await session.commit()
        cache = ResolverCache(
            max_entries=settings.cache_max_entries,
            max_bytes=settings.cache_max_bytes,
            max_ttl=settings.cache_max_ttl,
            negative_ttl=settings.cache_negative_ttl,
            stale_ttl=settings.cache_stale_ttl,
        )
        timeout = httpx.Timeout(
            settings.upstream_timeout, connect=min(settings.upstream_timeout, 2)
        )
        languages = Languages.shipped(settings.zone)
        native = HandleProtocolRemote(wait=settings.upstream_timeout)
        async with (
            httpx.AsyncClient(timeout=timeout, follow_redirects=False) as http,
            contextlib.aclosing(native),
        ):
            app.state.node = Node(
                settings=settings,
                database=database,
                resolver=Resolver(
                    RecallingStore(await database.store(), database, cache),
                    node_prefix=settings.node_prefix,
                    cache=cache,
                    remote=Remotes(HandleRestClient(http), native),
                    upstream_url=settings.upstream_url,
                    node_id=settings.node_id or uuid.uuid4().hex[:12],
                    max_hops=settings.max_hops,
                    stats=ResolveStats() if settings.metrics else None,
                ),
                pages=_pages(languages),
                languages=languages,
                scans=ScanRecorder(database, interval=settings.scan_flush_interval),
                attempts=AttemptLimiter(
                    per_address=settings.auth_failures_per_address,
                    per_credential=settings.auth_failures_per_credential,
                ),
            )
            app.state.dashboard = _dashboard(app, settings)
            app.state.supervisor = tasks = Supervisor(max_backoff=settings.task_max_backoff)
            sync = tasks.start("cache-invalidation", lambda: _cache_sync(database, cache))
            sampling = (
                tasks.start("database.replicas", database.replicas.sample)
                if database.replicas is not None
                else None
            )
            try:
                with app.state.dashboard.errors.installed(*SERVER_LOGGERS):
                    async with (
                        device_gateway(settings, database, cache, tasks) as gateway,
                        nbiot_ingest(settings, database, cache, tasks) as ingest,
                        reporting(settings, database, cache, tasks) as reports,
                    ):
                        app.state.gateway = gateway
                        app.state.nbiot = ingest
                        app.state.reporting = reports
                        async with (
                            scan_recording(app.state.node.scans, tasks),
                            metrics_pump(app, settings, gateway, ingest, reports),
                            handle_door(app.state.node),
                        ):
                            yield
            finally:
                await app.state.dashboard.sampler.stop()
                await sync.stop()
                if sampling is not None:
                    await sampling.stop()
                await database.dispose()

    app = NodeApp(
        title="idnode",
        version=VERSION,
        summary="Identifier-resolution secondary node, Handle REST compatible",
        lifespan=lifespan,
        dependencies=[Depends(plain_parameters)],
    )
    errors.install(app)
    contract.install(app)
    app.request_ids = logs.RequestIds()  # per process: create_app runs in each worker
    app.bodies = BodyGuard(
        app.routed,
        limit=settings.max_request_bytes,
        timeout=settings.request_body_timeout,
        streamed=[batches.BATCH_PATH],
    )
    if settings.lean_resolve:
        app.lean = FastResolve(app.state, app.request_ids)
    app.include_router(handles.router)
    app.include_router(enterprises.router)
    app.include_router(grants.router)
    # Before /api/v1/identifiers/{handle} (whose path parameter would take '.../history').
    app.include_router(history.router)
    app.include_router(recalls.router)
    app.include_router(node.router)
    app.include_router(templates.router)
    app.include_router(identifiers.router)
    app.include_router(devices.router)
    app.include_router(nbiot.router)
    app.include_router(batches.router)
    app.include_router(monitoring_api.router)
    app.include_router(dashboard.router)
    app.include_router(snms_users.router)
    # The SNMS-compatible paths: README "Moving an SNMS integration".
    app.include_router(snms_router)
    app.mount("/static", StaticFiles(packages=[("app", "static")]), name="static")
    app.include_router(proxy.router)  # last: its /{handle} catches every other path
    return app


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
            _say(
                f"idnode: MQTT port {exc} (another broker?); device gateway off. "
                "Set IDNODE_MQTT_URL=mqtt://127.0.0.1:1883 to use that broker, or "
                "IDNODE_EMBEDDED_BROKER_PORT for another port"
            )
            yield None
            return
        _say(f"idnode: embedded MQTT broker on mqtt://127.0.0.1:{broker.port} (device gateway)")
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
        _say(
            f"idnode: Handle protocol port {exc} (another node?); native listener off. "
            "Set IDNODE_HANDLE_PORT (or --handle-port) to another port, 0 to turn it off"
        )
        yield


@asynccontextmanager
async def metrics_pump(
    app: FastAPI,
    settings: Settings,
    gateway: MqttGateway | None,
    ingest: IngestQueue,
    reports: Reporting,
) -> AsyncIterator[None]:
    """The task moving this process's counts into the Prometheus metrics (when on)."""
    if not settings.metrics:
        yield
        return
    sources = Sources(
        app.state.node.database,
        app.state.node,
        mqtt=lambda: gateway.counters if gateway is not None else None,
        nbiot=lambda: ingest,
        delivery_errors=lambda: reports.reporter.errors if reports.reporter else 0,
    )
    try:
        async with _pumping(settings, sources, app.state.supervisor) as pump:
            app.state.metrics_pump = pump
            yield
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
        await running.stop()
        await queue.close()


def _dashboard(app: FastAPI, settings: Settings) -> Dashboard:
    def current_registry() -> CollectorRegistry:
        pump = getattr(app.state, "metrics_pump", None)
        if pump is not None:
            pump.flush()  # as GET /metrics does: this process's latest counts
        return metrics.registry()

    secret = settings.dashboard_secret
    # Without a configured key each process draws its own (`idnode serve` shares one with
    # its workers through the environment).
    key = secret.get_secret_value() if secret is not None else secrets.token_urlsafe(32)
    return Dashboard(
        sampler=Sampler(current_registry),
        errors=RecentErrors(),
        sessions=Sessions(key, settings.dashboard_session_ttl),
    )


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


def _pages(languages: Languages) -> jinja2.Environment:
    pages = jinja2.Environment(loader=jinja2.PackageLoader("app", "templates"), autoescape=True)
    languages.install(pages)
    return pages


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


async def _cache_sync(database: Database, cache: ResolverCache) -> None:
    if database.is_sqlite:
        await SqliteWatcher(database.sqlite_path, cache).run()
    else:
        await PostgresListener(database.listen_dsn, cache, freshness=database.freshness).run()
