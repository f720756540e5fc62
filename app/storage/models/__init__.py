"""The schema. Created only by Alembic migrations (migrations/), never by ``create_all``.

One row per identifier, its values as one JSON document: resolving is a single primary-key
read, and a write replaces the whole list at once, so concurrent writers can never leave a
mixed record behind.

The tables are declared by domain in this package's modules; everything is importable
from ``app.storage.models``.
"""

from __future__ import annotations

from app.storage.models.accounts import Credential, Enterprise, Grant, Prefix, ReaderToken
from app.storage.models.base import NAMING, Base, JSONDocument
from app.storage.models.devices import (
    Device,
    LorawanApplication,
    NbiotPlatform,
    ProvisioningKey,
    QueuedPush,
)
from app.storage.models.records import (
    AttributeValue,
    HandleReference,
    HandleRow,
    HistoryEntry,
    IdempotencyKey,
    Recall,
    ScanCount,
    TemplateRow,
    UniqueAttributeValue,
)
from app.storage.models.reporting import OutboxEvent, ReportingState, StatisticsSample
from app.storage.models.snms import SnmsSession, SnmsTemplate, SnmsUser

__all__ = [
    "NAMING",
    "AttributeValue",
    "Base",
    "Credential",
    "Device",
    "Enterprise",
    "Grant",
    "HandleReference",
    "HandleRow",
    "HistoryEntry",
    "IdempotencyKey",
    "JSONDocument",
    "LorawanApplication",
    "NbiotPlatform",
    "OutboxEvent",
    "Prefix",
    "ProvisioningKey",
    "QueuedPush",
    "ReaderToken",
    "Recall",
    "ReportingState",
    "ScanCount",
    "SnmsSession",
    "SnmsTemplate",
    "SnmsUser",
    "StatisticsSample",
    "TemplateRow",
    "UniqueAttributeValue",
]
