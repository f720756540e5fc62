"""The schema. Created only by Alembic migrations (migrations/), never by ``create_all``.

One row per identifier, its values as one JSON document: resolving is a single primary-key
read, and a write replaces the whole list at once, so concurrent writers can never leave a
mixed record behind.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
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
    """The identifier a mint with this key produced, so a retried mint returns it again."""

    __tablename__ = "idempotency_keys"

    owner: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    handle: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


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
    message), so it is kept as given: a signature cannot be checked against a digest.
    """

    __tablename__ = "nbiot_platforms"

    prefix: Mapped[str] = mapped_column(String(64), primary_key=True)
    platform: Mapped[str] = mapped_column(String(16), primary_key=True)  # onenet | ctwing
    token: Mapped[str | None] = mapped_column(String(128))
    provisioning_key_id: Mapped[int] = mapped_column(ForeignKey("provisioning_keys.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
