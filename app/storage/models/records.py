"""Identifiers: records, idempotency keys, history and references, templates and
attribute values, recalls and scan counts."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Index,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.storage.models.base import Base, JSONDocument


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
