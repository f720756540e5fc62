"""SNMS users' password SHA-256 sealed with the node key instead of kept in plain hex

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 17:40:00

The hashed SNMS login needs sha256hex(password), which logs a user in as well as the password
does, so it is encrypted in place with the key derived from the node key file
(IDNODE_NODE_KEY_FILE, see app/vault.py), under the user's row name; the downgrade opens it
again. The column widens to hold the nonce, tag and base64 of the 64 hex digits.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from migrations.sealing import Change, resize, rewrite_column

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
    resize("snms_users", "password_sha256", 64, 256)
    _rewrite(lambda vault, digest, row: vault.seal(digest, belongs_to=row))


def downgrade() -> None:
    _rewrite(lambda vault, digest, row: vault.open(digest, belongs_to=row))
    resize("snms_users", "password_sha256", 256, 64)


def _rewrite(change: Change) -> None:
    """Apply ``change`` to every stored digest (never null), under the same name the accounts
    seal it (app/snms/accounts.py sealed_under)."""
    rewrite_column(
        users,
        ("id", "username"),
        "password_sha256",
        lambda _user_id, username: f"snms_users/{username}",
        change,
    )
