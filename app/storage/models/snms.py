"""The SNMS-compatible API's users, sessions and templates."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    DateTime,
    ForeignKey,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.storage.models.base import Base, JSONDocument


class SnmsUser(Base):
    """A login an enterprise made for an integration written against the SNMS API.

    ``password_hash`` is a salted scrypt hash (``POST /identity/token``); ``password_sha256``
    is the SHA-256 hex the hashed login (``/identity/token/v1``) needs to know, sealed with
    the node key (``app/vault.py``) since it is as good as the password for that login.
    """

    __tablename__ = "snms_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    enterprise_id: Mapped[int] = mapped_column(ForeignKey("enterprises.id"), index=True)
    username: Mapped[str] = mapped_column(String(50), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    password_sha256: Mapped[str] = mapped_column(String(256))  # sealed, see app/vault.py
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
