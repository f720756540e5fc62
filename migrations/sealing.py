"""Rewriting a column of secrets in place with the node key, for the migrations that seal
(upgrade) or open (downgrade) one: 0008 (NB-IoT platform tokens), 0012 (SNMS password digests).

Part of the migrations, not of the app: what it does must stay what those migrations did when
they were written, whatever later changes the app's own code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import context, op

from app.settings import Settings
from app.vault import Vault

Change = Callable[[Vault, str, str], str]


def rewrite_column(
    table: sa.TableClause,
    keys: Sequence[str],
    column: str,
    row_name: Callable[..., str],
    change: Change,
) -> None:
    """Apply ``change(vault, value, row name)`` to every non-null ``column`` of ``table``; each
    row is found again by its ``keys`` columns and named by ``row_name(*their values)`` (the
    name the app seals it under). The node key is read only when there is a value to change."""
    connection = op.get_bind()
    key_columns = [table.c[key] for key in keys]
    rows = connection.execute(
        sa.select(*key_columns, table.c[column]).where(table.c[column].is_not(None))
    ).all()
    if not rows:
        return
    key_file = context.config.attributes.get("node_key_file") or Settings().node_key_file
    vault = Vault(key_file)
    for row in rows:
        *key_values, value = row
        connection.execute(
            table.update()
            .where(*(c == v for c, v in zip(key_columns, key_values, strict=True)))
            .values({column: change(vault, value, row_name(*key_values))})
        )


def resize(table: str, column: str, before: int, after: int) -> None:
    """``column`` of ``table`` from ``String(before)`` to ``String(after)``."""
    with op.batch_alter_table(table) as batch:
        batch.alter_column(
            column, existing_type=sa.String(length=before), type_=sa.String(length=after)
        )
