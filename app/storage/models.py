"""The schema. Created only by Alembic migrations (migrations/), never by ``create_all``.

One row per identifier, its values as one JSON document: resolving is a single primary-key
read, and a write replaces the whole list at once, so concurrent writers can never leave a
mixed record behind.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JSONDocument = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Enterprise(Base):
    __tablename__ = "enterprises"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))  # active | disabled
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Prefix(Base):
    """An enterprise prefix allocated under the node prefix."""

    __tablename__ = "prefixes"

    prefix: Mapped[str] = mapped_column(String(64), primary_key=True)
    enterprise_id: Mapped[int] = mapped_column(ForeignKey("enterprises.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Credential(Base):
    """A hashed secret: the operator token, an enterprise's Handle secret or its API token."""

    __tablename__ = "credentials"

    id: Mapped[int] = mapped_column(primary_key=True)
    enterprise_id: Mapped[int | None] = mapped_column(ForeignKey("enterprises.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # operator | secret | token
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class HandleRow(Base):
    """One identifier and its values (the Handle JSON of each, sorted by index)."""

    __tablename__ = "handles"

    handle: Mapped[str] = mapped_column(String(255), primary_key=True)
    prefix: Mapped[str] = mapped_column(String(64))
    values: Mapped[list[dict[str, Any]]] = mapped_column(JSONDocument)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_handles_prefix_handle", "prefix", "handle"),)


class IdempotencyKey(Base):
    """The identifier a mint with this key produced, so a retried mint returns it again;
    ``fingerprint`` (SHA-256 of the request) tells a retry from another request reusing the
    key (None for keys remembered before it was kept, which count as retries)."""

    __tablename__ = "idempotency_keys"

    owner: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    handle: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True)


class HistoryEntry(Base):
    """One change of an identifier: the values after a create or update, or before a delete."""

    __tablename__ = "handle_history"

    handle: Mapped[str] = mapped_column(String(255), primary_key=True)
    version: Mapped[int] = mapped_column(primary_key=True)
    operation: Mapped[str] = mapped_column(String(8))  # create | update | delete
    values: Mapped[list[dict[str, Any]]] = mapped_column(JSONDocument)
    changed: Mapped[list[int]] = mapped_column(JSONDocument)  # indexes added, changed, removed
    actor: Mapped[str] = mapped_column(String(128))
    # Indexed for the statistics: changes in a period, across every process (migration 0005).
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class HandleReference(Base):
    """``source`` has a value whose ``references`` name ``target`` (for walking downwards)."""

    __tablename__ = "handle_references"

    source: Mapped[str] = mapped_column(String(255), primary_key=True)
    target: Mapped[str] = mapped_column(String(255), primary_key=True)

    __table_args__ = (Index("ix_handle_references_target_source", "target", "source"),)


class ReaderToken(Base):
    """A read-only bearer token an enterprise issued (its hash lives in ``credentials``)."""

    __tablename__ = "reader_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    enterprise_id: Mapped[int] = mapped_column(ForeignKey("enterprises.id"), index=True)
    credential_id: Mapped[int] = mapped_column(ForeignKey("credentials.id"), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Grant(Base):
    """An owner lets an enterprise or a reader token read restricted values under ``scope``."""

    __tablename__ = "grants"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("enterprises.id"), index=True)
    # Exactly one of the two grantee columns is set.
    grantee_enterprise_id: Mapped[int | None] = mapped_column(ForeignKey("enterprises.id"))
    grantee_reader_id: Mapped[str | None] = mapped_column(ForeignKey("reader_tokens.id"))
    grantee: Mapped[str] = mapped_column(String(64))  # as the owner named it
    scope: Mapped[str] = mapped_column(String(255))  # a handle, or a prefix (no '/')
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_grants_grantee_enterprise_id_scope", "grantee_enterprise_id", "scope"),
        Index("ix_grants_grantee_reader_id_scope", "grantee_reader_id", "scope"),
    )


class TemplateRow(Base):
    """One version of an industry template; ``owner_prefix`` is None for node templates."""

    __tablename__ = "templates"

    id: Mapped[str] = mapped_column(String(130), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    owner_prefix: Mapped[str | None] = mapped_column(String(64))
    definition: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class UniqueAttributeValue(Base):
    """A value of a unique template item and the one identifier holding it.

    The primary key makes concurrent registrations of the same value collide in the database,
    so exactly one wins; a row lives while that identifier holds the value at ``value_index``.
    """

    __tablename__ = "unique_attribute_values"

    template_id: Mapped[str] = mapped_column(String(130), primary_key=True)
    item_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(400), primary_key=True)
    handle: Mapped[str] = mapped_column(String(255), index=True)
    value_index: Mapped[int] = mapped_column(Integer)


class AttributeValue(Base):
    """A searchable copy of one template attribute of an identifier (derived from its record
    on every write; see app/storage/attributes.py)."""

    __tablename__ = "attribute_values"

    handle: Mapped[str] = mapped_column(String(255), primary_key=True)
    value_index: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    template_id: Mapped[str] = mapped_column(String(130))
    name: Mapped[str] = mapped_column(String(128))
    value: Mapped[str] = mapped_column(String(400))
    restricted: Mapped[bool] = mapped_column(Boolean)

    __table_args__ = (
        Index("ix_attribute_values_search", "template_id", "name", "value", "handle"),
    )


class ProvisioningKey(Base):
    """A key and hashed secret that lets devices register themselves under a prefix."""

    __tablename__ = "provisioning_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    enterprise_id: Mapped[int] = mapped_column(ForeignKey("enterprises.id"), index=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    template: Mapped[str] = mapped_column(String(64))
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Device(Base):
    """A registered device: the idempotency key of registration and its liveness.

    (prefix, hardware_id_type, hardware_id) is unique, so concurrent registrations of one
    device, even from two gateway processes, produce one identifier.
    """

    __tablename__ = "devices"

    id: Mapped[int] = mapped_column(primary_key=True)
    prefix: Mapped[str] = mapped_column(String(64))
    hardware_id_type: Mapped[str] = mapped_column(String(16))
    hardware_id: Mapped[str] = mapped_column(String(64))
    handle: Mapped[str] = mapped_column(String(255), unique=True)
    network: Mapped[str] = mapped_column(String(16))
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # When the record's liveness values were last rewritten (they lag last_seen by design).
    published_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    online: Mapped[bool] = mapped_column(Boolean)
    battery: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)

    __table_args__ = (
        UniqueConstraint("prefix", "hardware_id_type", "hardware_id"),
        Index("ix_devices_prefix_hardware_id", "prefix", "hardware_id"),
        Index("ix_devices_online_last_seen", "online", "last_seen"),
    )


class LorawanApplication(Base):
    """A ChirpStack application whose devices register under an enterprise prefix."""

    __tablename__ = "lorawan_applications"

    application_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    prefix: Mapped[str] = mapped_column(String(64))
    provisioning_key_id: Mapped[int] = mapped_column(ForeignKey("provisioning_keys.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class NbiotPlatform(Base):
    """An enterprise's account on an NB-IoT platform (OneNET, CTWing) pushing to the node.

    ``token`` is the push token the platform signs with (OneNET: md5 over token + nonce +
    message): a signature cannot be checked against a digest, so it is kept encrypted with a
    key derived from the node key (``app/vault.py``), never in plain text.
    """

    __tablename__ = "nbiot_platforms"

    prefix: Mapped[str] = mapped_column(String(64), primary_key=True)
    platform: Mapped[str] = mapped_column(String(16), primary_key=True)  # onenet | ctwing
    token: Mapped[str | None] = mapped_column(String(512))  # sealed, see app/vault.py
    provisioning_key_id: Mapped[int] = mapped_column(ForeignKey("provisioning_keys.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class OutboxEvent(Base):
    """A change to report to the top-level node, written in the transaction of the change.

    ``id`` orders delivery (AUTOINCREMENT on SQLite, so pruned ids are never reused);
    ``event_id`` is the idempotency id the top-level node de-duplicates on.
    """

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(500))

    __table_args__ = (
        Index("ix_outbox_delivered_at_id", "delivered_at", "id"),
        {"sqlite_autoincrement": True},
    )


class ReportingState(Base):
    """The delivery lease (one process delivers at a time) and how far statistics were
    reported; one row, named ``delivery``."""

    __tablename__ = "reporting_state"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    statistics_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class StatisticsSample(Base):
    """What one node process saw between ``started_at`` and ``ended_at``: resolutions and
    errors it answered; the span itself is its uptime heartbeat."""

    __tablename__ = "statistics_samples"

    id: Mapped[int] = mapped_column(primary_key=True)
    process: Mapped[str] = mapped_column(String(128))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    resolutions: Mapped[int] = mapped_column(BigInteger)
    errors: Mapped[int] = mapped_column(BigInteger)


class QueuedPush(Base):
    """An NB-IoT platform push answered 200 and not yet applied (``gateways/nbiot/ingest.py``).

    It holds what applying needs and no secret: who registers is looked up again from the
    enterprise's platform account when the push is applied. ``claimed_by`` / ``claimed_until``
    are the lease of the worker applying it; ``not_before`` delays a retry after a failure.
    """

    __tablename__ = "ingest_queue"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    prefix: Mapped[str] = mapped_column(String(64))
    platform: Mapped[str] = mapped_column(String(16))  # onenet | ctwing
    imei: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(8))  # data | online | offline
    details: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer)  # failed for a transient reason so far
    not_before: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = ({"sqlite_autoincrement": True},)


class SnmsUser(Base):
    """A login an enterprise made for an integration written against the SNMS API.

    ``password_hash`` is a salted scrypt hash (``POST /identity/token``); ``password_sha256``
    is the unsalted SHA-256 hex the hashed login (``/identity/token/v1``) needs to know.
    """

    __tablename__ = "snms_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    enterprise_id: Mapped[int] = mapped_column(ForeignKey("enterprises.id"), index=True)
    username: Mapped[str] = mapped_column(String(50), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    password_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SnmsSession(Base):
    """A token issued by an SNMS login, valid until ``expires_at``; ``user_id`` is None for
    a ``<prefix>/ADMIN`` login with the enterprise secret."""

    __tablename__ = "snms_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    enterprise_id: Mapped[int] = mapped_column(ForeignKey("enterprises.id"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("snms_users.id"), index=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SnmsTemplate(Base):
    """An SNMS template name ``(prefix, version)`` and the node template it stands for, with
    the SNMS fields the node's template model has no place for."""

    __tablename__ = "snms_templates"

    id: Mapped[int] = mapped_column(primary_key=True)
    prefix: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(128))
    template_id: Mapped[str] = mapped_column(String(130), index=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (UniqueConstraint("prefix", "version"),)


class Recall(Base):
    """An identifier its enterprise recalled, and why: the index the resolver consults to
    warn on everything below it in a trace (the warning value itself is in the record)."""

    __tablename__ = "recalls"

    handle: Mapped[str] = mapped_column(String(255), primary_key=True)
    reason: Mapped[str] = mapped_column(String(400))
    recalled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(128))


class ScanCount(Base):
    """Scans of an identifier's public page on one UTC day, written in batches; no one's
    address or browser is kept."""

    __tablename__ = "scan_counts"

    handle: Mapped[str] = mapped_column(String(255), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    scans: Mapped[int] = mapped_column(BigInteger)
    first_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
