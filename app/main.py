"""The composition root: ``create_app()`` builds the node; its lifespan owns every resource."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import jinja2
from fastapi import FastAPI

from app.api import batches, enterprises, errors, handles, identifiers, node, proxy, templates
from app.api.fast import FastResolve
from app.node import Node
from app.registry import catalog
from app.settings import Settings
from app.storage.database import Database
from app.storage.invalidation import PostgresListener, SqliteWatcher
from resolver.cache import ResolverCache
from resolver.engine import Resolver
from resolver.upstream import HandleRestClient

VERSION = "0.1.0"


def create_app(settings: Settings | None = None) -> FastAPI:
    """The node's ASGI app. Nothing is connected until the lifespan starts."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
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
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as http:
            app.state.node = Node(
                settings=settings,
                database=database,
                resolver=Resolver(
                    await database.store(),
                    node_prefix=settings.node_prefix,
                    cache=cache,
                    remote=HandleRestClient(http),
                    upstream_url=settings.upstream_url,
                    node_id=settings.node_id or uuid.uuid4().hex[:12],
                    max_hops=settings.max_hops,
                ),
                pages=jinja2.Environment(
                    loader=jinja2.PackageLoader("app", "templates"), autoescape=True
                ),
            )
            sync = asyncio.create_task(_cache_sync(database, cache), name="cache-invalidation")
            try:
                yield
            finally:
                sync.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sync
                await database.dispose()

    app = FastAPI(
        title="idnode",
        version=VERSION,
        summary="Identifier-resolution secondary node, Handle REST compatible",
        lifespan=lifespan,
    )
    errors.install(app)
    if settings.lean_resolve:
        app.add_middleware(FastResolve)
    app.include_router(handles.router)
    app.include_router(enterprises.router)
    app.include_router(node.router)
    app.include_router(templates.router)
    app.include_router(identifiers.router)
    app.include_router(batches.router)
    app.include_router(proxy.router)  # last: its /{handle} catches every other path
    return app


async def _cache_sync(database: Database, cache: ResolverCache) -> None:
    if database.is_sqlite:
        await SqliteWatcher(database.engine, cache).run()
    else:
        await PostgresListener(database.asyncpg_dsn, cache).run()
