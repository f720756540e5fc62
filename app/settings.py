"""Node settings, read from ``IDNODE_*`` environment variables (or passed in by tests)."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from resolver.errors import InvalidHandle
from resolver.identifier import parse_prefix


class Settings(BaseSettings):
    """Everything the node can be told; each field is documented for ``--help`` and the README."""

    model_config = SettingsConfigDict(env_prefix="IDNODE_", extra="ignore")

    # --- identity in the national tree ---
    node_prefix: str = Field(
        "88.999", description="The prefix the top-level node allocated to this secondary node."
    )

    # --- storage ---
    database_url: str = Field(
        "sqlite+aiosqlite:///./idnode.db",
        description="SQLAlchemy URL: sqlite+aiosqlite:///FILE or postgresql+asyncpg://USER@HOST/DB.",
    )
    database_pool_size: int = Field(10, ge=1, description="Connections per process (PostgreSQL).")
    sqlite_busy_timeout_ms: int = Field(
        10_000, ge=0, description="How long a SQLite writer waits for the write lock."
    )

    # --- security ---
    admin_token: SecretStr | None = Field(
        None,
        description="The operator's bearer token. Unset: the node creates one on first start, "
        "stores only its hash and prints it once.",
    )

    # --- HTTP ---
    public_url: str | None = Field(
        None,
        description="Base URL the node is reached at from outside (for links and QR codes); "
        "defaults to the address it serves on.",
    )
    max_request_bytes: int = Field(
        16 * 1024 * 1024, ge=1024, description="Largest request body accepted (413 beyond)."
    )

    @field_validator("node_prefix")
    @classmethod
    def _valid_prefix(cls, value: str) -> str:
        try:
            return parse_prefix(value)
        except InvalidHandle as exc:
            raise ValueError(exc.message) from exc

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
