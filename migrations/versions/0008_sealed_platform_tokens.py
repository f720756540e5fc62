"""NB-IoT platform tokens sealed with the node key instead of kept in plain text

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 15:00:00

Existing tokens are encrypted in place with the key derived from the node key file
(IDNODE_NODE_KEY_FILE, see app/vault.py); the downgrade decrypts them again. The column
widens to hold the nonce, tag and base64 of a 128-character token.
"""

from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import context, op

from app.settings import Settings
from app.vault import Vault

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

platforms = sa.table(
    "nbiot_platforms",
    sa.column("prefix", sa.String),
    sa.column("platform", sa.String),
    sa.column("token", sa.String),
)


def upgrade() -> None:
    with op.batch_alter_table("nbiot_platforms") as batch:
        batch.alter_column(
            "token", existing_type=sa.String(length=128), type_=sa.String(length=512)
        )
    _rewrite(lambda vault, token, row: vault.seal(token, belongs_to=row))


def downgrade() -> None:
    _rewrite(lambda vault, token, row: vault.open(token, belongs_to=row))
    with op.batch_alter_table("nbiot_platforms") as batch:
        batch.alter_column(
            "token", existing_type=sa.String(length=512), type_=sa.String(length=128)
        )


def _rewrite(change: Callable[[Vault, str, str], str]) -> None:
    """Apply ``change`` to every stored token (the node key is read only when there is one)."""
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(platforms.c.prefix, platforms.c.platform, platforms.c.token).where(
            platforms.c.token.is_not(None)
        )
    ).all()
    if not rows:
        return
    key_file = context.config.attributes.get("node_key_file") or Settings().node_key_file
    vault = Vault(key_file)
    for prefix, platform, token in rows:
        # The same name the registry seals under (app/registry/devices/nbiot.py).
        row = f"nbiot_platforms/{prefix}/{platform}"
        connection.execute(
            platforms.update()
            .where(platforms.c.prefix == prefix, platforms.c.platform == platform)
            .values(token=change(vault, token, row))
        )
