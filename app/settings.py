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
    lean_resolve: bool = Field(
        True,
        description="Answer anonymous resolves before FastAPI's routing (off only to compare "
        "with the routed path).",
    )
    max_request_bytes: int = Field(
        16 * 1024 * 1024, ge=1024, description="Largest request body accepted (413 beyond)."
    )

    batch_max_bytes: int = Field(
        1024 * 1024 * 1024,
        ge=1024,
        description="Largest body of POST /api/v1/identifiers:batch (413 beyond).",
    )
    batch_max_items: int = Field(
        1_000_000, ge=1, description="Most registration requests in one batch call."
    )
    batch_chunk_rows: int = Field(
        10_000,
        ge=1,
        description="Items per transaction of a batch that is not atomic (and per set-based "
        "write of one that is).",
    )

    # --- resolver cache ---
    cache_max_entries: int = Field(
        100_000, ge=0, description="Identifiers kept in each process's cache (0 turns it off)."
    )
    cache_max_bytes: int = Field(
        256 * 1024 * 1024, ge=0, description="Memory bound of the cache, in bytes."
    )
    cache_max_ttl: int = Field(
        3600, ge=0, description="Longest a cached answer is kept, whatever the values' TTLs."
    )
    cache_negative_ttl: int = Field(
        30, ge=0, description="How long 'not found' answers are cached (0: not at all)."
    )
    cache_stale_ttl: int = Field(
        3600,
        ge=0,
        description="How long past its lifetime an answer may be served while the node that "
        "holds it is unreachable (RFC 8767).",
    )

    # --- other nodes ---
    upstream_url: str | None = Field(
        None,
        description="Handle REST base URL of the upstream (top-level) node that resolves "
        "every prefix outside this node's; unset: such identifiers answer 'not responsible'.",
    )
    upstream_timeout: float = Field(
        5.0, gt=0, description="Seconds to wait for an upstream or enterprise node."
    )
    max_hops: int = Field(
        8, ge=1, description="Most nodes a resolution may pass before it is refused."
    )
    node_id: str | None = Field(
        None,
        description="Name of this process in forwarded requests (loop detection); "
        "default: random per process.",
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
