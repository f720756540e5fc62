"""NB-IoT platform tokens sealed with the node key instead of kept in plain text

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 15:00:00

Existing tokens are encrypted in place with the key derived from the node key file
(IDNODE_NODE_KEY_FILE, see app/vault.py); the downgrade decrypts them again. The column
widens to hold the nonce, tag and base64 of a 128-character token.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from migrations.sealing import Change, resize, rewrite_column

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
    resize("nbiot_platforms", "token", 128, 512)
    _rewrite(lambda vault, token, row: vault.seal(token, belongs_to=row))


def downgrade() -> None:
    _rewrite(lambda vault, token, row: vault.open(token, belongs_to=row))
    resize("nbiot_platforms", "token", 512, 128)


def _rewrite(change: Change) -> None:
    """Apply ``change`` to every stored token, under the same name the registry seals it
    (app/registry/devices/nbiot.py)."""
    rewrite_column(
        platforms,
        ("prefix", "platform"),
        "token",
        lambda prefix, platform: f"nbiot_platforms/{prefix}/{platform}",
        change,
    )
