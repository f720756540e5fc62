"""``idnode serve`` and ``idnode gateway``: the processes, and the checks before they start
(ports free, database ready, the operator token)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import click

from app import logs, ports
from app.commands.database import (
    database_ready,
    in_transaction,
    settings_from_env,
    where,
)
from app.metrics import MULTIPROC_ENV
from app.registry.access import enterprises
from app.resources import MetricsPortTaken, device_gateway, gateway_metrics
from app.security import MIN_OPERATOR_TOKEN_CHARS, new_token
from app.settings import Settings
from app.storage.database import Database
from app.supervisor import Supervisor

DEFAULT_SERVER = "granian"


@click.command()
@click.option(
    "--host", default="127.0.0.1", show_default=True, envvar="IDNODE_HOST", help="Listen address."
)
@click.option(
    "--port", default=8000, show_default=True, type=int, envvar="IDNODE_PORT", help="Listen port."
)
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1), help="Processes.")
@click.option("--no-migrate", is_flag=True, help="Do not apply database migrations first.")
@click.option(
    "--server",
    type=click.Choice(["granian", "uvicorn"]),
    default=DEFAULT_SERVER,
    show_default=True,
    envvar="IDNODE_SERVER",
    help="HTTP server (granian, the default, was the faster where measured).",
)
@click.option(
    "--no-broker",
    is_flag=True,
    help="Do not start the embedded MQTT broker (it starts when IDNODE_MQTT_URL is unset).",
)
@click.option(
    "--handle-port",
    default=2641,
    show_default=True,
    type=click.IntRange(0, 65535),
    envvar="IDNODE_HANDLE_PORT",
    help="TCP and UDP port of the Handle protocol (0: off).",
)
def serve(
    host: str,
    port: int,
    workers: int,
    no_migrate: bool,
    server: str,
    no_broker: bool,
    handle_port: int,
) -> None:
    """Serve the node over HTTP (migrating the database first), with the device gateway and
    the Handle protocol listener."""
    _refuse_taken_port(host, port)  # before anything else is said or started
    os.environ["IDNODE_EMBEDDED_BROKER"] = "false" if no_broker else "true"
    os.environ["IDNODE_HANDLE_HOST"] = host
    os.environ["IDNODE_HANDLE_PORT"] = str(_free_handle_port(host, handle_port))
    settings = settings_from_env()
    database_ready(settings, migrate=not no_migrate)
    base = settings.public_url or f"http://{host}:{port}"
    click.echo(f"idnode: node prefix {settings.node_prefix}, storage {where(settings)}")
    click.echo(f"idnode: node key {settings.node_key_file} (data directory {settings.data_dir})")
    click.echo(f"idnode: serving {base}  (Handle API {base}/api/handles/..., docs {base}/docs)")
    if os.environ["IDNODE_HANDLE_PORT"] != "0":
        click.echo(f"idnode: Handle protocol on {host}:{handle_port} (TCP and UDP)")
    announce_operator_token(settings)
    os.environ.setdefault("IDNODE_PUBLIC_URL", base)
    # One key for every worker, so a dashboard session works whichever serves the request.
    os.environ.setdefault("IDNODE_DASHBOARD_SECRET", secrets.token_urlsafe(32))
    sys.stdout.flush()
    logging_config = logs.dict_config(settings.log_format, settings.log_level)
    with _shared_metrics(workers if settings.metrics else 1):
        _run_server(server, host=host, port=port, workers=workers, logging_config=logging_config)


def _free_handle_port(host: str, port: int) -> int:
    """The Handle port the workers may share, or 0 (off, said why) when another program
    holds it: the node then serves HTTP without it, as with a taken MQTT port."""
    if port == 0:
        return 0
    try:
        ports.probe(host, port, ports.TCP_AND_UDP)
    except ports.PortTaken as exc:
        click.echo(
            f"idnode: Handle protocol port {exc} (another node?); native listener off. "
            "Set IDNODE_HANDLE_PORT (or --handle-port) to another port, 0 to turn it off",
            err=True,
        )
        return 0
    return port


def _refuse_taken_port(host: str, port: int) -> None:
    """Stop before anything starts when the address is taken. granian binds with
    SO_REUSEPORT, so a second node would otherwise share the port with the first and split
    the requests between two databases; uvicorn would fail only after printing "serving"."""
    try:
        ports.probe(host, port)
    except ports.UnknownHost as exc:
        raise click.ClickException(f"cannot serve on {exc}") from exc
    except ports.PortTaken as exc:
        raise click.ClickException(
            f"cannot serve on {exc} (another idnode or server "
            "listens there? stop it, or choose another port with --port or IDNODE_PORT)"
        ) from exc


@contextlib.contextmanager
def _shared_metrics(workers: int) -> Iterator[None]:
    """With several workers, a fresh directory where they add up their metrics
    (prometheus_client multiprocess mode); removed when the server stops."""
    if workers == 1 or os.environ.get(MULTIPROC_ENV):
        yield  # one process needs none; a directory the deployment chose is its own
        return
    with tempfile.TemporaryDirectory(prefix="idnode-metrics-") as directory:
        os.environ[MULTIPROC_ENV] = directory
        try:
            yield
        finally:
            del os.environ[MULTIPROC_ENV]


@click.command()
def gateway() -> None:
    """Run the MQTT device gateway alone (scale-out), on IDNODE_MQTT_URL.

    With IDNODE_MQTT_SHARED_GROUP several gateway processes split the devices' messages.
    """
    settings = settings_from_env()
    if not settings.mqtt_url:
        raise click.UsageError("idnode gateway needs IDNODE_MQTT_URL=mqtt://host:port")
    database_ready(settings, migrate=False)
    click.echo(
        f"idnode: device gateway on {settings.mqtt_url.rpartition('@')[2]}, "
        f"storage {where(settings)}"
    )
    if settings.gateway_metrics_port is not None:
        click.echo(
            f"idnode: gateway metrics on "
            f"http://{settings.gateway_metrics_host}:{settings.gateway_metrics_port}/metrics"
        )
    sys.stdout.flush()
    logs.configure(settings.log_format, settings.log_level)
    try:
        asyncio.run(_run_gateway(settings))
    except MetricsPortTaken as exc:
        raise click.ClickException(str(exc)) from exc


async def _run_gateway(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    database = Database(settings)
    tasks = Supervisor(max_backoff=settings.task_max_backoff)
    try:
        async with (
            device_gateway(settings, database, None, tasks) as running,
            gateway_metrics(settings, database, running, tasks),
        ):
            await stop.wait()
            if running is not None:
                click.echo(f"idnode: gateway stopped {json.dumps(running.counters.as_json())}")
    finally:
        await database.dispose()


def _run_server(
    server: str, *, host: str, port: int, workers: int, logging_config: dict[str, Any]
) -> None:
    target = "app.main:create_app"
    # No access log line per request (log_access / access_log off): at tens of thousands of
    # resolves a second it would cost more than answering them.
    if server == "granian":
        from granian import Granian
        from granian.constants import Interfaces

        Granian(
            target, address=host, port=port, interface=Interfaces.ASGI, workers=workers,
            factory=True, log_access=False, log_dictconfig=logging_config,
        ).serve()  # fmt: skip
        return
    import uvicorn

    uvicorn.run(
        target, factory=True, host=host, port=port, workers=workers, log_config=logging_config,
        access_log=False,
    )  # fmt: skip


def announce_operator_token(settings: Settings) -> None:
    if settings.admin_token is not None:
        click.echo("idnode: operator token is the value of IDNODE_ADMIN_TOKEN")
        length = len(settings.admin_token.get_secret_value())
        if length < MIN_OPERATOR_TOKEN_CHARS:
            click.echo(
                f"idnode: WARNING: IDNODE_ADMIN_TOKEN has only {length} characters; use at "
                f"least {MIN_OPERATOR_TOKEN_CHARS} random ones (e.g. {new_token()})",
                err=True,
            )
        return
    token = in_transaction(settings, enterprises.ensure_operator_token)
    if token is not None:
        click.echo(f"idnode: operator token (shown once, only its hash is stored): {token}")
    else:
        click.echo(
            "idnode: operator token was printed at first start; "
            "`idnode operator-token --rotate` issues a new one"
        )
