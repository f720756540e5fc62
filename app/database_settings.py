"""The database's settings (the URL, pools, a transaction pooler, replicas): a part of
:class:`app.settings.Settings`, which reads them from ``IDNODE_*`` variables as the rest."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

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
        "postgresql+asyncpg://USER@HOST/DB. Several PostgreSQL hosts, for failover: "
        "postgresql+asyncpg://USER@HOST1:PORT,HOST2:PORT/DB?target_session_attrs=read-write "
        "(or SQLAlchemy's ?host=HOST1:PORT&host=HOST2:PORT&target_session_attrs=read-write); "
        "the node uses whichever is the primary. Default: the SQLite file idnode.db in "
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
        if driver.startswith("postgresql"):
            rest = _hosts_in_query(name, rest)
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


# What a multi-host URL must ask for, so that writes and LISTEN land on the primary.
_WRITABLE = ("read-write", "primary")


def _hosts_in_query(name: str, rest: str) -> str:
    """A PostgreSQL URL's part after ``://`` with several hosts in SQLAlchemy's form.

    libpq's form lists them in place of the host (``USER@H1:5432,H2:5433/DB``), which
    SQLAlchemy cannot parse; SQLAlchemy's repeats ``host`` in the query. Either becomes the
    latter (the node turns it back into asyncpg's form for its own pools). With several hosts
    ``target_session_attrs`` must pick the primary: a node writing to whichever host answers
    first would fail every write once that is a standby.
    """
    head, _, query = rest.partition("?")
    netloc, slash, path = head.partition("/")
    auth, at, hostlist = netloc.rpartition("@")
    pairs = parse_qsl(query, keep_blank_values=True)
    hosts = [value for key, value in pairs if key == "host"]
    if "," in hostlist:
        if hosts:
            raise ValueError(f"{name} lists hosts both before the database and in ?host=")
        hosts = [h.strip() for h in hostlist.split(",")]
        pairs = [("host", h) for h in hosts] + pairs
        head = f"{auth}{at}/{path}" if at else f"/{path}"
    elif not hosts or (len(hosts) == 1 and "," not in hosts[0]):
        return rest  # one host: as given
    for host in (h for entry in hosts for h in entry.split(",")):
        if not _host_and_port(host):
            raise ValueError(f"{name}: {host!r} is not HOST or HOST:PORT (in {_hidden(rest)})")
    attrs = dict(pairs).get("target_session_attrs")
    if attrs not in _WRITABLE:
        raise ValueError(
            f"{name} lists several hosts: add target_session_attrs=read-write, so that the "
            "node connects to whichever is the primary"
        )
    if not slash or not path:
        raise ValueError(f"{name} lists several hosts but no database: HOST1,HOST2/DB")
    return f"{head}?{urlencode(pairs, safe=':,[]/')}"


def _host_and_port(host: str) -> bool:
    """Whether ``host`` is HOST or HOST:PORT (an IPv6 address in brackets)."""
    if not host:
        return False
    address, colon, port = host.rpartition(":")
    if not colon or host.endswith("]"):
        return True
    return bool(address) and port.isdigit() and 0 < int(port) < 65536


def _hidden(rest: str) -> str:
    """``rest`` without a password, for a message."""
    auth, at, after = rest.partition("@")
    user, colon, _password = auth.partition(":")
    return f"{user}{':***' if colon else ''}@{after}" if at else rest
