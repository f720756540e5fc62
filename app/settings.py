"""Node settings, read from ``IDNODE_*`` environment variables (or passed in by tests)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from app.database_settings import DatabaseSettings
from app.device_settings import DeviceSettings
from resolver.errors import InvalidHandle
from resolver.identifier import parse_prefix

SQLITE = "sqlite+aiosqlite:///"


def user_data_dir() -> Path:
    """``$XDG_DATA_HOME/idnode``, else ``~/.local/share/idnode``: one place per user, the
    same whichever folder a command runs in."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "idnode"


class Settings(DatabaseSettings, DeviceSettings):
    """Everything the node can be told; each field is documented for ``--help`` and the README.

    One class; the database's fields are declared in ``app/database_settings.py`` and the
    device gateway's in ``app/device_settings.py``.
    """

    model_config = SettingsConfigDict(env_prefix="IDNODE_", extra="ignore")

    # --- identity in the national tree ---
    node_prefix: str = Field(
        "88.999", description="The prefix the top-level node allocated to this secondary node."
    )

    # --- storage (the database's own fields: app/database_settings.py) ---
    data_dir: Path = Field(
        default_factory=user_data_dir,
        description="Where the node keeps its SQLite database and its key unless "
        "IDNODE_DATABASE_URL / IDNODE_NODE_KEY_FILE say otherwise; every command uses it, "
        "whatever folder it runs in. Default: $XDG_DATA_HOME/idnode (~/.local/share/idnode).",
    )
    # --- security ---
    admin_token: SecretStr | None = Field(
        None,
        description="The operator's bearer token. Unset: the node creates one on first start, "
        "stores only its hash and prints it once.",
    )

    auth_failures_per_address: int = Field(
        20,
        ge=1,
        description="Failed authentications one client address may make per minute (HTTP "
        "API, dashboard login, NB-IoT pushes) before its attempts are refused with 429 for "
        "the rest of the minute; counted per node process.",
    )
    auth_failures_per_credential: int = Field(
        10,
        ge=1,
        description="Failed authentications per minute with one credential (an enterprise's "
        "ADMIN user, a token, a provisioning key, a platform account) from any address, "
        "before it is refused with 429 (MQTT: rejected TooManyAttempts) for the rest of the "
        "minute; counted per process.",
    )

    # --- operator dashboard ---
    dashboard_secret: SecretStr | None = Field(
        None,
        description="Key that signs dashboard session cookies. Unset: `idnode serve` draws a "
        "random one at each start (shared by its workers; sessions end when the node "
        "restarts); set it when several nodes sit behind one address.",
    )
    dashboard_session_ttl: int = Field(
        8 * 3600, ge=60, description="Seconds a dashboard login lasts."
    )

    # --- HTTP ---
    public_url: str | None = Field(
        None,
        description="Base URL the node is reached at from outside (for links and QR codes); "
        "defaults to the address it serves on.",
    )
    timezone: str = Field(
        "Asia/Shanghai",
        description="IANA time zone the server-rendered pages (the product page) show times "
        "in, with their offset; the APIs always answer in UTC.",
    )
    lean_resolve: bool = Field(
        True,
        description="Answer anonymous resolves before FastAPI's routing (off only to compare "
        "with the routed path).",
    )
    max_request_bytes: int = Field(
        16 * 1024 * 1024,
        ge=1024,
        description="Largest request body accepted, on every endpoint but the batch one "
        "(413 beyond, refused before it is read).",
    )
    request_body_timeout: float = Field(
        30.0,
        gt=0,
        description="Seconds a request body may take to arrive, from the start of the "
        "request (408 and the connection closed beyond); the batch endpoint is not bounded.",
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

    # --- Handle protocol (TCP and UDP, for the CAICT ID-SDK and other nodes) ---
    handle_host: str | None = Field(
        None,
        description="Address of the Handle protocol listener; `idnode serve` sets it to its "
        "--host. Unset: no listener.",
    )
    handle_port: int = Field(
        2641,
        ge=0,
        le=65535,
        description="TCP and UDP port of the Handle protocol listener (0 turns it off); "
        "`idnode serve --handle-port` sets it.",
    )
    handle_idle_timeout: float = Field(
        60.0,
        gt=0,
        description="Seconds a Handle TCP connection may stay silent (or take to send one "
        "message) before the node closes it.",
    )
    handle_max_message: int = Field(
        1024 * 1024,
        ge=1024,
        description="Largest Handle protocol message accepted, in bytes (bounds the memory of "
        "each connection).",
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

    # --- reporting to the top-level node ---
    upstream_report_url: str | None = Field(
        None,
        description="Endpoint of the top-level node that receives this node's events "
        "(prefix allocations, identifier changes, statistics) as signed JSON batches; https "
        "in production (http only for loopback tests). Unset: events wait in the outbox.",
    )
    node_key_file: str = Field(
        "",
        description="The node's Ed25519 private key (PEM) that signs reports; created with "
        "mode 0600 on first start when absent. Default: idnode-node-key.pem in "
        "IDNODE_DATA_DIR.",
    )
    report_batch_size: int = Field(500, ge=1, le=10_000, description="Most events per POST.")
    report_interval: float = Field(
        5.0, gt=0, description="Seconds between looks for new events when the outbox is empty."
    )
    report_max_backoff: float = Field(
        300.0, gt=0, description="Longest wait between delivery attempts after failures."
    )
    report_stats_interval: float = Field(
        3600.0,
        gt=0,
        description="Seconds each process's statistics sample (resolutions, errors, uptime) "
        "covers; one statistics event per interval goes to the top-level node.",
    )
    report_stats_flush: float = Field(
        5.0,
        gt=0,
        description="Seconds between writes of each process's running statistics sample "
        "while it counts something new, so `idnode report monthly` on a running node is at "
        "most this far behind.",
    )
    outbox_retention_days: float = Field(
        30.0, ge=0, description="Days delivered events are kept before they are pruned."
    )
    scans: bool = Field(
        True,
        description="Count scans of identifiers' public pages (GET /{handle}); false: none "
        "are counted and no page shows them.",
    )
    scan_flush_interval: float = Field(
        5.0,
        gt=0,
        description="Seconds scans of public pages are counted in memory before they are "
        "written (sooner when many identifiers were scanned); counts only, no address or "
        "browser.",
    )

    # --- monitoring ---
    metrics: bool = Field(
        True,
        description="Count resolutions, registrations, device messages and serve them at "
        "GET /metrics (Prometheus). Off only to measure what counting costs.",
    )
    metrics_interval: float = Field(
        1.0,
        gt=0,
        description="Seconds between moves of each process's counts into the Prometheus "
        "metrics (GET /metrics moves its own process's at once).",
    )
    gateway_metrics_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="`idnode gateway` serves GET /metrics (Prometheus: its MQTT messages and "
        "registrations, which no node process sees) on this port; unset: it serves nothing.",
    )
    gateway_metrics_host: str = Field(
        "127.0.0.1",
        description="Address of the gateway's /metrics (0.0.0.0 to be scraped from outside, "
        "e.g. in a container).",
    )
    census_interval: float = Field(
        15.0,
        gt=0,
        description="Seconds between counts of enterprises, identifiers and online/offline "
        "devices in the database (for their gauges).",
    )
    task_max_backoff: float = Field(
        30.0,
        gt=0,
        description="Longest wait before a long-lived task (MQTT workers, NB-IoT applier, "
        "report delivery, cache invalidation, ...) that crashed is started again.",
    )
    readiness_timeout: float = Field(
        2.0, gt=0, description="Seconds GET /readyz waits for the database to answer."
    )
    log_format: Literal["json", "text"] = Field(
        "json", description="Log lines on stderr: one JSON object per line, or plain text."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Least severe log lines written."
    )

    @field_validator("log_format", "log_level", mode="before")
    @classmethod
    def _lower_case(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("node_prefix")
    @classmethod
    def _valid_prefix(cls, value: str) -> str:
        try:
            return parse_prefix(value)
        except InvalidHandle as exc:
            raise ValueError(exc.message) from exc

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}: use an IANA name such as Asia/Shanghai or UTC"
            ) from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        """The time zone of the human-facing pages."""
        return ZoneInfo(self.timezone)

    @field_validator("upstream_report_url")
    @classmethod
    def _report_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        try:
            url = httpx.URL(value)
        except httpx.InvalidURL as exc:
            raise ValueError(f"IDNODE_UPSTREAM_REPORT_URL is not a URL: {exc}") from exc
        loopback = url.host in {"127.0.0.1", "localhost", "::1"}
        if url.host and (url.scheme == "https" or (url.scheme == "http" and loopback)):
            return value
        raise ValueError(
            "IDNODE_UPSTREAM_REPORT_URL must be an https:// URL (http:// only on loopback, "
            f"for tests), not {value!r}"
        )

    @model_validator(mode="after")
    def _absolute_paths(self) -> Self:
        """Files in the data directory unless named; relative names are made absolute once,
        so what start-up prints is where the files are, and workers agree on it."""
        self.data_dir = self.data_dir.expanduser().absolute()
        if not self.database_url:
            self.database_url = f"{SQLITE}{self.data_dir / 'idnode.db'}"
        elif self.database_url.startswith(SQLITE):
            file = self.database_url.removeprefix(SQLITE)
            if file and file != ":memory:" and not file.startswith("/"):
                self.database_url = f"{SQLITE}{Path(file).absolute()}"
        self.node_key_file = str(
            Path(self.node_key_file).expanduser().absolute()
            if self.node_key_file
            else self.data_dir / "idnode-node-key.pem"
        )
        return self

    @model_validator(mode="after")
    def _replicas_of_postgres(self) -> Self:
        # After _absolute_paths: an unset IDNODE_DATABASE_URL is SQLite in the data directory.
        if self.database_replica_urls and self.is_sqlite:
            raise ValueError(
                "IDNODE_DATABASE_REPLICA_URLS needs PostgreSQL: IDNODE_DATABASE_URL is SQLite"
            )
        return self

    def in_data_dir(self) -> bool:
        """Whether the database file or the node key lives in :attr:`data_dir`."""
        files = [Path(self.node_key_file)]
        if self.database_url.startswith(SQLITE):
            files.append(Path(self.database_url.removeprefix(SQLITE)))
        return any(file.parent == self.data_dir for file in files)
