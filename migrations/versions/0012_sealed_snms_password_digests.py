"""SNMS users' password SHA-256 sealed with the node key instead of kept in plain hex

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 17:40:00

The hashed SNMS login needs sha256hex(password), which logs a user in as well as the password
does, so it is encrypted in place with the key derived from the node key file
(IDNODE_NODE_KEY_FILE, see app/vault.py), under the user's row name; the downgrade opens it
again. The column widens to hold the nonce, tag and base64 of the 64 hex digits.
"""

from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import context, op

from app.settings import Settings
from app.vault import Vault

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

users = sa.table(
    "snms_users",
    sa.column("id", sa.Integer),
    sa.column("username", sa.String),
    sa.column("password_sha256", sa.String),
)


def upgrade() -> None:
    with op.batch_alter_table("snms_users") as batch:
        batch.alter_column(
            "password_sha256", existing_type=sa.String(length=64), type_=sa.String(length=256)
        )
    _rewrite(lambda vault, digest, row: vault.seal(digest, belongs_to=row))


def downgrade() -> None:
    _rewrite(lambda vault, digest, row: vault.open(digest, belongs_to=row))
    with op.batch_alter_table("snms_users") as batch:
        batch.alter_column(
            "password_sha256", existing_type=sa.String(length=256), type_=sa.String(length=64)
        )


def _rewrite(change: Callable[[Vault, str, str], str]) -> None:
    """Apply ``change`` to every stored digest (the node key is read only when there is one)."""
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(users.c.id, users.c.username, users.c.password_sha256)
    ).all()
    if not rows:
        return
    key_file = context.config.attributes.get("node_key_file") or Settings().node_key_file
    vault = Vault(key_file)
    for user_id, username, digest in rows:
        # The same name the accounts seal under (app/snms/accounts.py sealed_under).
        row = f"snms_users/{username}"
        connection.execute(
            users.update()
            .where(users.c.id == user_id)
            .values(password_sha256=change(vault, digest, row))
        )
