"""``idnode``: run the node and administer it from a shell."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click
from alembic import command
from alembic.config import Config
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

import migrations
from app import logs, ports
from app.csv_import import ImportSummary, UnreadableCsv, count_rows, encoding_of, import_csv
from app.errors import DatabaseUnusable, NodeError
from app.main import MetricsPortTaken, device_gateway, gateway_metrics
from app.metrics import MULTIPROC_ENV
from app.registry import catalog, enterprises
from app.reporting.keys import NodeKeyUnreadable, load_or_create
from app.reporting.monthly import InvalidMonth, as_text, month_bounds, monthly_report
from app.security import MIN_OPERATOR_TOKEN_CHARS, new_token
from app.settings import Settings
from app.storage.database import Database, check_usable, unusable
from app.supervisor import Supervisor
from resolver.errors import IdnodeError
from resolver.handle_protocol.bodies import Query
from resolver.handle_protocol.client import (
    Answer,
    HandleClient,
    HandleProtocolError,
    request_message,
    udp_request,
)
from resolver.handle_protocol.message import OC_RESOLUTION, MalformedMessage

T = TypeVar("T")
DEFAULT_SERVER = "granian"


def _settings() -> Settings:
    try:
        settings = Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"IDNODE_{'_'.join(map(str, e['loc'])).upper()}: "
            + e["msg"].removeprefix("Value error, ")
            for e in exc.errors()
        )
        raise click.ClickException(f"invalid setting: {problems}") from exc
    if settings.in_data_dir():
        try:
            settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise click.ClickException(
                f"cannot create the data directory {settings.data_dir} ({exc.strerror}): "
                "set IDNODE_DATA_DIR to a folder this user may write"
            ) from exc
    return settings


def migrate_database(settings: Settings) -> None:
    """Bring the schema to the newest migration, or raise :class:`DatabaseUnusable`."""
    check_usable(settings.database_url)
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    config.attributes["database_url"] = settings.database_url
    config.attributes["node_key_file"] = settings.node_key_file  # seals stored secrets
    config.attributes["configure_logger"] = False
    try:
        command.upgrade(config, "head")
    except (DBAPIError, OSError) as exc:  # connecting failed (migrations themselves are tested)
        raise unusable(settings.database_url, exc) from exc


def _database_ready(settings: Settings, *, migrate: bool = True) -> None:
    """Migrate (or only check a SQLite file's place); a database that cannot be used ends
    the command in one line."""
    try:
        if migrate:
            migrate_database(settings)
        else:
            check_usable(settings.database_url)
    except DatabaseUnusable as exc:
        raise click.ClickException(exc.message) from exc


def _in_transaction(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    _database_ready(settings)

    async def run() -> T:
        database = Database(settings)
        try:
            async with database.write_session() as session:
                result = await work(session)
                await session.commit()
                return result
        finally:
            await database.dispose()

    try:
        return asyncio.run(run())
    except NodeError as exc:
        raise click.ClickException(exc.message) from exc


def _echo_json(data: object) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


@click.group()
@click.version_option(package_name="idnode")
def main() -> None:
    """idnode: an industrial-internet identifier-resolution secondary node.

    Settings come from IDNODE_* environment variables (IDNODE_DATABASE_URL,
    IDNODE_NODE_PREFIX, IDNODE_ADMIN_TOKEN, ...); see the README.
    """


@main.command()
def migrate() -> None:
    """Create or upgrade the database schema to the newest version."""
    settings = _settings()
    _database_ready(settings)
    click.echo(f"database schema is up to date ({_where(settings)})")


@main.command()
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
    help="HTTP server (the default is the faster one in loadtests/README.md).",
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
    settings = _settings()
    _database_ready(settings, migrate=not no_migrate)
    base = settings.public_url or f"http://{host}:{port}"
    click.echo(f"idnode: node prefix {settings.node_prefix}, storage {_where(settings)}")
    click.echo(f"idnode: node key {settings.node_key_file} (data directory {settings.data_dir})")
    click.echo(f"idnode: serving {base}  (Handle API {base}/api/handles/..., docs {base}/docs)")
    if os.environ["IDNODE_HANDLE_PORT"] != "0":
        click.echo(f"idnode: Handle protocol on {host}:{handle_port} (TCP and UDP)")
    _announce_operator_token(settings)
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


@main.command()
def gateway() -> None:
    """Run the MQTT device gateway alone (scale-out), on IDNODE_MQTT_URL.

    With IDNODE_MQTT_SHARED_GROUP several gateway processes split the devices' messages.
    """
    settings = _settings()
    if not settings.mqtt_url:
        raise click.UsageError("idnode gateway needs IDNODE_MQTT_URL=mqtt://host:port")
    _database_ready(settings, migrate=False)
    click.echo(
        f"idnode: device gateway on {settings.mqtt_url.rpartition('@')[2]}, "
        f"storage {_where(settings)}"
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


def _announce_operator_token(settings: Settings) -> None:
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
    token = _in_transaction(settings, enterprises.ensure_operator_token)
    if token is not None:
        click.echo(f"idnode: operator token (shown once, only its hash is stored): {token}")
    else:
        click.echo(
            "idnode: operator token was printed at first start; "
            "`idnode operator-token --rotate` issues a new one"
        )


@main.command("operator-token")
@click.option("--rotate", is_flag=True, help="Revoke the stored operator token, print a new one.")
def operator_token(rotate: bool) -> None:
    """Issue the operator's bearer token (needed for /api/v1/enterprises)."""
    settings = _settings()
    if not rotate:
        raise click.UsageError(
            "pass --rotate to revoke the current operator token and get a new one"
        )
    click.echo(_in_transaction(settings, enterprises.rotate_operator_token))


@main.group()
def enterprise() -> None:
    """Allocate enterprise prefixes and manage enterprises."""


@enterprise.command("create")
@click.argument("name")
@click.option("--prefix", "segment", help="Explicit segment (e.g. 0042); default: next free.")
def enterprise_create(name: str, segment: str | None) -> None:
    """Register enterprise NAME; prints its prefix, secret and token (shown once)."""
    settings = _settings()
    issued = _in_transaction(
        settings,
        lambda s: enterprises.create_enterprise(
            s, name=name, segment=segment, node_prefix=settings.node_prefix
        ),
    )
    _echo_json(issued.as_json())


@enterprise.command("list")
def enterprise_list() -> None:
    """Every enterprise with its prefixes and status, as JSON."""
    views = _in_transaction(_settings(), enterprises.list_enterprises)
    _echo_json([v.as_json() for v in views])


@enterprise.command("disable")
@click.argument("prefix")
def enterprise_disable(prefix: str) -> None:
    """Refuse PREFIX's writes; its identifiers keep resolving."""
    view = _in_transaction(
        _settings(), lambda s: enterprises.change_status(s, prefix, status="disabled")
    )
    _echo_json(view.as_json())


@enterprise.command("enable")
@click.argument("prefix")
def enterprise_enable(prefix: str) -> None:
    """Accept PREFIX's writes again."""
    view = _in_transaction(
        _settings(), lambda s: enterprises.change_status(s, prefix, status="active")
    )
    _echo_json(view.as_json())


@main.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--template", required=True, help="Template id, e.g. food.batch (or id@version).")
@click.option("--prefix", required=True, help="Enterprise prefix to register under, e.g. 88.999.1.")
@click.option(
    "--encoding",
    help="Encoding of FILE (utf-8, gbk, gb18030, ...); default: UTF-8 with or without BOM, "
    "else GB18030/GBK, which Excel writes for Chinese text.",
)
def import_rows(file: Path, template: str, prefix: str, encoding: str | None) -> None:
    """Register every row of FILE (CSV) as an identifier of TEMPLATE under PREFIX.

    The header names the attributes; columns suffix, url and idempotencyKey are special.
    Rejected rows go to FILE.rejected.csv with line number and reason; the exit status is
    1 when any row was rejected.
    """
    settings = _settings()
    try:
        encoding = encoding_of(file, encoding)
    except UnreadableCsv as exc:
        raise click.ClickException(exc.message) from exc
    _database_ready(settings)
    total = count_rows(file, encoding)

    async def run(advance: Callable[[int], None]) -> ImportSummary:
        database = Database(settings)
        try:
            async with database.write_session() as session:
                await catalog.ensure_bundled(session, node_prefix=settings.node_prefix)
                await session.commit()
            return await import_csv(
                database,
                file,
                template=template,
                prefix=prefix,
                node_prefix=settings.node_prefix,
                encoding=encoding,
                progress=advance,
            )
        finally:
            await database.dispose()

    with click.progressbar(length=total, label=f"importing {file.name}", file=sys.stderr) as bar:
        try:
            summary = asyncio.run(run(bar.update))
        except IdnodeError as exc:
            raise click.ClickException(exc.message) from exc
    click.echo(
        f"{summary.accepted} of {summary.rows} rows registered under {prefix} "
        f"(template {template}), {summary.rejected} rejected"
    )
    if summary.rejected_file is not None:
        click.echo(f"rejected rows, with line numbers and reasons: {summary.rejected_file}")
        sys.exit(1)


@main.command()
@click.argument("handle")
@click.option(
    "--native",
    "address",
    metavar="HOST:PORT",
    help="Ask this Handle protocol server (default: this node, 127.0.0.1:IDNODE_HANDLE_PORT).",
)
@click.option("--type", "types", multiple=True, help="Only values of this type (repeatable).")
@click.option("--index", "indexes", multiple=True, type=int, help="Only this index (repeatable).")
@click.option("--udp", is_flag=True, help="One datagram instead of a TCP connection.")
def resolve(
    handle: str, address: str | None, types: tuple[str, ...], indexes: tuple[int, ...], udp: bool
) -> None:
    """Resolve HANDLE over the Handle protocol and print the answer as Handle JSON."""
    host, port = _native_address(address or f"127.0.0.1:{_settings().handle_port}")
    query = Query(handle, indexes, types)
    try:
        answer = asyncio.run(_ask_natively(host, port, query, udp=udp))
    except (HandleProtocolError, MalformedMessage) as exc:
        raise click.ClickException(str(exc)) from exc
    if answer.code != 1:
        _echo_json({"responseCode": answer.code, "handle": handle, "message": answer.error})
        sys.exit(1)
    name, values = answer.values()
    _echo_json({"responseCode": 1, "handle": name, "values": values})


def _native_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise click.BadParameter(f"{address!r} is not HOST:PORT", param_hint="--native")
    return host.strip("[]"), int(port)


async def _ask_natively(host: str, port: int, query: Query, *, udp: bool) -> Answer:
    if udp:
        return await udp_request(host, port, request_message(OC_RESOLUTION, query.pack()))
    client = await HandleClient.connect(host, port)
    try:
        return await client.resolve(query.handle, indexes=query.indexes, types=query.types)
    finally:
        await client.close()


@main.group("node-key")
def node_key() -> None:
    """The node's Ed25519 key, which signs its reports to the top-level node."""


@node_key.command("show")
def node_key_show() -> None:
    """Print the public key (PEM) to register with the top-level node (creates the key
    at IDNODE_NODE_KEY_FILE if there is none yet). The private key is never printed."""
    settings = _settings()
    try:
        key = load_or_create(settings.node_key_file)
    except (NodeKeyUnreadable, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"# key id {key.key_id} ({settings.node_key_file})")
    click.echo(key.public_pem, nl=False)


@main.group()
def report() -> None:
    """Operations reports of this secondary node."""


def _month(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    try:
        month_bounds(value)
    except InvalidMonth as exc:
        raise click.BadParameter(str(exc)) from exc
    return value


@report.command("monthly")
@click.option("--month", required=True, callback=_month, help="The month, YYYY-MM (UTC).")
@click.option(
    "--format", "form", type=click.Choice(["json", "text"]), default="text", show_default=True
)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here.")
@click.option("--top", default=10, show_default=True, type=click.IntRange(1), help="Enterprises.")
def report_monthly(month: str, form: str, output: Path | None, top: int) -> None:
    """The monthly operations report: enterprises, prefixes, identifiers registered, changed
    and deleted (top enterprises), resolutions, errors, availability, reporting backlog."""
    settings = _settings()
    data = _in_transaction(settings, lambda s: monthly_report(s, month, top=top))
    data["node"] = settings.node_prefix
    text = as_text(data) if form == "text" else json.dumps(data, indent=2, ensure_ascii=False)
    if output is None:
        click.echo(text, nl=form == "json")
    else:
        output.write_text(text if form == "text" else text + "\n", encoding="utf-8")
        click.echo(f"monthly report for {month} written to {output}")


def _where(settings: Settings) -> str:
    url = settings.database_url
    if settings.is_sqlite:
        return f"SQLite {url.partition(':///')[2]}"
    return url.split("@")[-1] if "@" in url else url
