"""SQLite: a short log of the identifiers each commit changed, for the other processes' caches

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 20:40:00

PostgreSQL tells every process what a commit changed with NOTIFY. SQLite has no such thing:
each process watched the file's data version and cleared its whole cache on any commit, its
own statistics samples included. Now a write appends the identifiers it changed here, and the
watchers evict just those (app/storage/invalidation.py, app/cache_sync.py). PostgreSQL does
not get the table.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.create_table(
        "record_changes",
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("handles", sa.Text, nullable=False),
        sqlite_autoincrement=True,  # numbers never reused: a watcher's place stays valid
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.drop_table("record_changes")
