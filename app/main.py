"""The composition root: ``create_app()`` builds the node; its lifespan owns every resource."""

from __future__ import annotations

import contextlib
import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import jinja2
from fastapi import Depends, FastAPI
from prometheus_client import CollectorRegistry
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from app import logs, metrics
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
from app.cache_sync import cache_sync
from app.dashboard import Dashboard, RecentErrors, Sampler, Sessions
from app.i18n import Languages
from app.node import Node
from app.registry.identifiers import RecallingStore, ScanRecorder
from app.registry.templates import catalog
from app.reporting.runner import reporting
from app.resources import (
    device_gateway,
    handle_door,
    metrics_pump,
    nbiot_ingest,
    scan_recording,
)
from app.settings import Settings
from app.snms.endpoints import router as snms_router
from app.state import NodeState
from app.storage.database import Database
from app.supervisor import Supervisor
from app.throttle import AttemptLimiter
from gateways import nbiot
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
    running: NodeState | None = None  # what the lifespan yielded, while it runs

    def publish(self, state: NodeState) -> None:
        """Make the lifespan's state reachable from the app too (``app.state.node``...), for
        code that holds the app rather than a request (tests, the dashboard's sampler)."""
        self.running = state
        for key, value in state.items():
            setattr(self.state, key, value)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if "state" not in scope and self.running is not None:
            # A client without the lifespan-state extension (httpx's ASGITransport):
            # give the request what a server would have copied into its scope.
            scope["state"] = dict(self.running)
        if self.lean is not None and await self.lean(scope, send):
            return
        await logs.RequestIdMiddleware(self.bodies, self.request_ids)(scope, receive, send)

    async def routed(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None) -> NodeApp:
    """The node's ASGI app. Nothing is connected until the lifespan starts."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[NodeState]:
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
            node = Node(
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
            dashboard = _dashboard(app, settings)
            tasks = Supervisor(max_backoff=settings.task_max_backoff)
            sync = tasks.start("cache-invalidation", lambda: cache_sync(database, cache))
            sampling = (
                tasks.start("database.replicas", database.replicas.sample)
                if database.replicas is not None
                else None
            )
            try:
                with dashboard.errors.installed(*SERVER_LOGGERS):
                    async with (
                        device_gateway(settings, database, cache, tasks) as gateway,
                        nbiot_ingest(settings, database, cache, tasks) as ingest,
                        reporting(settings, database, cache, tasks) as reports,
                        scan_recording(node.scans, tasks),
                        metrics_pump(settings, node, tasks, gateway, ingest, reports) as pump,
                        handle_door(node),
                    ):
                        state = NodeState(
                            node=node,
                            dashboard=dashboard,
                            supervisor=tasks,
                            gateway=gateway,
                            nbiot=ingest,
                            reporting=reports,
                            metrics_pump=pump,
                        )
                        app.publish(state)
                        yield state
            finally:
                await dashboard.sampler.stop()
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
        app.lean = FastResolve(app.request_ids)
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


def _dashboard(app: NodeApp, settings: Settings) -> Dashboard:
    def current_registry() -> CollectorRegistry:
        pump = app.running["metrics_pump"] if app.running is not None else None
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


def _pages(languages: Languages) -> jinja2.Environment:
    pages = jinja2.Environment(loader=jinja2.PackageLoader("app", "templates"), autoescape=True)
    languages.install(pages)
    return pages
