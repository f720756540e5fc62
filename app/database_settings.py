"""The database's settings (the URL, pools, a transaction pooler, replicas): a part of
:class:`app.settings.Settings`, which reads them from ``IDNODE_*`` variables as the rest."""

from __future__ import annotations

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings

_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}


class DatabaseSettings(BaseSettings):
    """The fields :class:`app.settings.Settings` has for the database."""

    database_url: str = Field(
        "",
        description="SQLAlchemy URL: sqlite+aiosqlite:///FILE or "
        "postgresql+asyncpg://USER@HOST/DB. Default: the SQLite file idnode.db in "
        "IDNODE_DATA_DIR.",
    )
    database_pool_size: int = Field(10, ge=1, description="Connections per process (PostgreSQL).")
    database_transaction_pooler: bool = Field(
        False,
        description="IDNODE_DATABASE_URL goes through a pooler in transaction mode (PgBouncer "
        "pool_mode=transaction): the node then keeps no prepared statement past a "
        "transaction and reads inside transactions, as such a pooler needs.",
    )
    database_listen_url: str | None = Field(
        None,
        description="PostgreSQL URL of the cache listener's connection (LISTEN needs a session "
        "of its own): PostgreSQL itself when IDNODE_DATABASE_URL goes through a pooler in "
        "transaction mode. Default: IDNODE_DATABASE_URL.",
    )
    database_replica_urls: str = Field(
        "",
        description="Comma-separated PostgreSQL URLs of streaming replicas (same forms as "
        "IDNODE_DATABASE_URL): resolutions that miss the cache, search, history and trace "
        "read there when the replica has replayed every change this process was told of; "
        "writes always go to IDNODE_DATABASE_URL. Empty: everything reads the primary.",
    )
    replica_max_lag: float = Field(
        5.0,
        gt=0,
        description="Seconds a replica may lag behind the primary before it is skipped "
        "(reads go to another replica or the primary; /readyz names it).",
    )
    sqlite_busy_timeout_ms: int = Field(
        10_000, ge=0, description="How long a SQLite writer waits for the write lock."
    )

    @field_validator("database_url", "database_listen_url")
    @classmethod
    def _async_driver(cls, value: str | None, info: ValidationInfo) -> str | None:
        """The node's drivers are async: ``postgres://`` and ``postgresql://`` (what hosting
        panels hand out) mean asyncpg, ``sqlite://`` means aiosqlite."""
        if not value:
            return value  # the default, in IDNODE_DATA_DIR
        name = f"IDNODE_{(info.field_name or '').upper()}"
        scheme, sep, rest = value.partition("://")
        if not sep:
            raise ValueError(f"{name} is not a URL: {value!r}")
        driver = _ASYNC_DRIVERS.get(scheme.lower(), scheme)
        if driver not in _ASYNC_DRIVERS.values():
            raise ValueError(
                f"{name} must start with sqlite+aiosqlite:/// or "
                f"postgresql+asyncpg://, not {scheme}://"
            )
        if name == "IDNODE_DATABASE_LISTEN_URL" and not driver.startswith("postgresql"):
            raise ValueError(f"{name} is for PostgreSQL (LISTEN), not {scheme}://")
        return f"{driver}://{rest}"

    @field_validator("database_replica_urls")
    @classmethod
    def _replica_drivers(cls, value: str) -> str:
        """Each replica URL as IDNODE_DATABASE_URL's are read; PostgreSQL only."""
        urls = []
        for part in (p.strip() for p in value.split(",")):
            if not part:
                continue
            scheme, sep, rest = part.partition("://")
            driver = _ASYNC_DRIVERS.get(scheme.lower(), scheme) if sep else ""
            if not driver.startswith("postgresql"):
                raise ValueError(
                    "IDNODE_DATABASE_REPLICA_URLS: each entry must be a PostgreSQL URL "
                    f"(postgresql+asyncpg://USER@HOST/DB), not {part!r}"
                )
            urls.append(f"{driver}://{rest}")
        return ",".join(urls)

    @property
    def replica_urls(self) -> list[str]:
        """IDNODE_DATABASE_REPLICA_URLS, one URL each (none on SQLite)."""
        if not self.database_replica_urls:
            return []
        return self.database_replica_urls.split(",")

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
