"""``/metrics`` (Prometheus), ``/healthz`` (the process serves) and ``/readyz`` (its database
and broker answer, no task keeps failing; each read replica's state, which never makes it
unready): what a scraper, a load balancer and Kubernetes probes ask."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.api.deps import NodeDep
from app.errors import DatabaseUnavailable, MetricsOff
from app.metrics import registry
from app.node import Node
from app.settings import Settings
from app.state import state_of

router = APIRouter(tags=["Monitoring"])


@router.get(
    "/metrics",
    summary="Prometheus metrics, added up over every worker process",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}},
        404: {"description": "The node runs with IDNODE_METRICS=false"},
    },
)
async def metrics(request: Request) -> Response:
    """Every ``idnode_*`` metric in the Prometheus text format (see the README, Monitoring)."""
    pump = state_of(request.scope)["metrics_pump"]
    if pump is None:
        raise MetricsOff("metrics are off on this node (IDNODE_METRICS=false)")
    pump.flush()  # this process's latest counts; other workers' are at most a second old
    return Response(generate_latest(registry()), media_type=CONTENT_TYPE_LATEST)


@router.get("/healthz", summary="The process is alive and serving")
async def healthz() -> dict[str, str]:
    """Always ``{"status": "ok"}`` while the process answers HTTP (a liveness probe)."""
    return {"status": "ok"}


NOT_READY = {
    "type": "object",
    "required": ["status", "reasons"],
    "properties": {
        "status": {"const": "unavailable"},
        "reasons": {"type": "array", "items": {"type": "string"}},
    },
}


@router.get(
    "/readyz",
    summary="The node can do its work: database (and broker, when configured) reachable, "
    "no long-lived task failing",
    responses={
        503: {
            "description": "Not ready: one reason per dependency that is not",
            "content": {"application/json": {"schema": NOT_READY}},
        }
    },
)
async def readyz(request: Request, node: NodeDep) -> Any:
    """200 ``{"status": "ready"}``, or 503 with one reason per dependency that is not."""
    reasons = []
    database = await _database_problem(node)
    if database is not None:
        reasons.append(database)
    _words, broker = broker_state(request, node.settings)
    if broker is not None:
        reasons.append(broker)
    reasons += state_of(request.scope)["supervisor"].failing()
    # Replicas are told, never needed: one skipped leaves its reads to the others or the
    # primary.
    replicas = node.database.replicas
    extra = {} if replicas is None else {"replicas": replicas.report()}
    if reasons:
        body = orjson.dumps({"status": "unavailable", "reasons": reasons, **extra})
        return Response(body, 503, media_type="application/json")
    return {"status": "ready", **extra}


async def _database_problem(node: Node) -> str | None:
    timeout = node.settings.readiness_timeout
    try:
        async with asyncio.timeout(timeout), node.database.read_session() as session:
            await session.execute(text("SELECT 1"))
    except TimeoutError:
        return f"database: no answer to SELECT 1 within {timeout:g} s"
    except DatabaseUnavailable as exc:
        return f"database: {exc.message}"
    except (SQLAlchemyError, OSError) as exc:
        return f"database: {_first_line(exc)}"
    return None


def broker_state(request: Request, settings: Settings) -> tuple[str, str | None]:
    """The device gateway's broker in words, and the reason it makes the node unready (None
    when it does not). The embedded broker `idnode serve` starts unasked cannot: a port taken
    by another broker (a Mosquitto on 1883) only shows here and on the dashboard."""
    gateway = state_of(request.scope)["gateway"]
    if gateway is None:
        if settings.embedded_broker and not settings.mqtt_url:
            port = settings.embedded_broker_port
            return f"off: 127.0.0.1:{port} is taken (another broker?)", None
        return "not configured", None
    connected = gateway.connected.is_set()
    kind = "" if settings.mqtt_url else "embedded, "
    words = f"{kind}{gateway.address}, {'connected' if connected else 'not connected'}"
    if connected:
        return words, None
    return words, f"broker: the device gateway is not connected to {gateway.address}"


def _first_line(exc: BaseException) -> str:
    # SQLAlchemy appends the statement and a documentation link; the cause is the first line.
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else "no message"
