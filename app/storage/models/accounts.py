"""Enterprises, their prefixes and credentials, reader tokens and grants."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    DateTime,
    ForeignKey,
    Index,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.storage.models.base import Base


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
