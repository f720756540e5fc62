"""Reporting to the top-level node: the outbox, its state, statistics samples."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Index,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.storage.models.base import Base, JSONDocument


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
