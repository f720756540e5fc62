"""Devices, the keys they register with, LoRaWAN applications, NB-IoT platforms and their
queued pushes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.storage.models.base import Base, JSONDocument


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
