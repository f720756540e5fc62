"""lz4 for the stored documents: the values of each identifier and of each history entry

PostgreSQL compresses a JSON document over ~2 KB (a record with a dozen template values) when
it is written; its default method, pglz, took a third of the time of writing such a row in a
bulk load. lz4 compresses these documents as small and several times faster, to write and to
read. Only rows written from now on use it. Servers built without lz4 (and SQLite) keep what
they have.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 08:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DOCUMENTS = (("handles", "values"), ("handle_history", "values"))


def _set_compression(method: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    offered = bind.execute(
        sa.text("SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'")
    ).scalar()
    if not offered or method not in offered:
        return
    for table, column in DOCUMENTS:
        op.execute(f'ALTER TABLE {table} ALTER COLUMN "{column}" SET COMPRESSION {method}')


def upgrade() -> None:
    _set_compression("lz4")


def downgrade() -> None:
    _set_compression("pglz")
