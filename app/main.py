"""The composition root: ``create_app()`` builds the node; its lifespan owns every resource."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import jinja2
from fastapi import FastAPI

from app.api import enterprises, errors, handles, proxy
from app.node import Node
from app.settings import Settings
from app.storage.database import Database
from app.storage.handles import SqlStore
from resolver.engine import Resolver

VERSION = "0.1.0"


def create_app(settings: Settings | None = None) -> FastAPI:
    """The node's ASGI app. Nothing is connected until the lifespan starts."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = Database(settings)
        app.state.node = Node(
            settings=settings,
            database=database,
            resolver=Resolver(SqlStore(database.engine), node_prefix=settings.node_prefix),
            pages=jinja2.Environment(
                loader=jinja2.PackageLoader("app", "templates"), autoescape=True
            ),
        )
        try:
            yield
        finally:
            await database.dispose()

    app = FastAPI(
        title="idnode",
        version=VERSION,
        summary="Identifier-resolution secondary node, Handle REST compatible",
        lifespan=lifespan,
    )
    errors.install(app)
    app.include_router(handles.router)
    app.include_router(enterprises.router)
    app.include_router(proxy.router)  # last: its /{handle} catches every other path
    return app
