"""``idnode``: run the node and administer it from a shell (the commands are in
``app/commands/``)."""

from __future__ import annotations

import click

from app.commands import admin, database, native, serve
from app.commands.database import migrate_database

__all__ = ["main", "migrate_database"]


@click.group()
@click.version_option(package_name="idnode")
def main() -> None:
    """idnode: an industrial-internet identifier-resolution secondary node.

    Settings come from IDNODE_* environment variables (IDNODE_DATABASE_URL,
    IDNODE_NODE_PREFIX, IDNODE_ADMIN_TOKEN, ...); see the README.
    """


for command in (
    database.migrate,
    serve.serve,
    serve.gateway,
    admin.operator_token,
    admin.enterprise,
    admin.import_rows,
    native.resolve,
    admin.node_key,
    admin.report,
):
    main.add_command(command)
