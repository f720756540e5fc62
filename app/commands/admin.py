"""Administration from a shell: the operator token, enterprises, CSV imports, the node key,
the monthly report."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path

import click

from app.commands.database import (
    database_ready,
    echo_json,
    in_transaction,
    settings_from_env,
)
from app.csv_import import ImportSummary, UnreadableCsv, count_rows, encoding_of, import_csv
from app.registry.access import enterprises
from app.registry.templates import catalog
from app.reporting.keys import NodeKeyUnreadable, load_or_create
from app.reporting.monthly import InvalidMonth, as_text, month_bounds, monthly_report
from app.storage.database import Database
from resolver.errors import IdnodeError


@click.command("operator-token")
@click.option("--rotate", is_flag=True, help="Revoke the stored operator token, print a new one.")
def operator_token(rotate: bool) -> None:
    """Issue the operator's bearer token (needed for /api/v1/enterprises)."""
    settings = settings_from_env()
    if not rotate:
        raise click.UsageError(
            "pass --rotate to revoke the current operator token and get a new one"
        )
    click.echo(in_transaction(settings, enterprises.rotate_operator_token))


@click.group()
def enterprise() -> None:
    """Allocate enterprise prefixes and manage enterprises."""


@enterprise.command("create")
@click.argument("name")
@click.option("--prefix", "segment", help="Explicit segment (e.g. 0042); default: next free.")
def enterprise_create(name: str, segment: str | None) -> None:
    """Register enterprise NAME; prints its prefix, secret and token (shown once)."""
    settings = settings_from_env()
    issued = in_transaction(
        settings,
        lambda s: enterprises.create_enterprise(
            s, name=name, segment=segment, node_prefix=settings.node_prefix
        ),
    )
    echo_json(issued.as_json())


@enterprise.command("list")
def enterprise_list() -> None:
    """Every enterprise with its prefixes and status, as JSON."""
    views = in_transaction(settings_from_env(), enterprises.list_enterprises)
    echo_json([v.as_json() for v in views])


def _status_command(name: str, status: str, summary: str) -> None:
    """``idnode enterprise <name> PREFIX``: set the enterprise's status to ``status``."""

    @enterprise.command(name, help=summary)
    @click.argument("prefix")
    def change_status(prefix: str) -> None:
        view = in_transaction(
            settings_from_env(), lambda s: enterprises.change_status(s, prefix, status=status)
        )
        echo_json(view.as_json())


_status_command("disable", "disabled", "Refuse PREFIX's writes; its identifiers keep resolving.")
_status_command("enable", "active", "Accept PREFIX's writes again.")


@click.command("import")
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
    settings = settings_from_env()
    try:
        encoding = encoding_of(file, encoding)
    except UnreadableCsv as exc:
        raise click.ClickException(exc.message) from exc
    database_ready(settings)
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


@click.group("node-key")
def node_key() -> None:
    """The node's Ed25519 key, which signs its reports to the top-level node."""


@node_key.command("show")
def node_key_show() -> None:
    """Print the public key (PEM) to register with the top-level node (creates the key
    at IDNODE_NODE_KEY_FILE if there is none yet). The private key is never printed."""
    settings = settings_from_env()
    try:
        key = load_or_create(settings.node_key_file)
    except (NodeKeyUnreadable, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"# key id {key.key_id} ({settings.node_key_file})")
    click.echo(key.public_pem, nl=False)


@click.group()
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
    settings = settings_from_env()
    data = in_transaction(settings, lambda s: monthly_report(s, month, top=top))
    data["node"] = settings.node_prefix
    text = as_text(data) if form == "text" else json.dumps(data, indent=2, ensure_ascii=False)
    if output is None:
        click.echo(text, nl=form == "json")
    else:
        output.write_text(text if form == "text" else text + "\n", encoding="utf-8")
        click.echo(f"monthly report for {month} written to {output}")
