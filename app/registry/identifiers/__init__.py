"""Identifiers: writing records under the node's rules (``handles``), templated identifiers
(``templated``), bulk loads, idempotency keys, history, trace, search, recalls, scans and the
public page."""

from __future__ import annotations

from app.registry.identifiers.bulk import Batch, Item, Result, authorize, register_chunk
from app.registry.identifiers.bulk_load import BulkLoad, collector_paused
from app.registry.identifiers.handles import authorize_write, can_read_restricted, delete_record
from app.registry.identifiers.history import record_at
from app.registry.identifiers.recalls import RecallingStore
from app.registry.identifiers.scans import ScanRecorder
from app.registry.identifiers.trace import MAX_NODES

__all__ = [
    "MAX_NODES",
    "Batch",
    "BulkLoad",
    "Item",
    "RecallingStore",
    "Result",
    "ScanRecorder",
    "authorize",
    "authorize_write",
    "can_read_restricted",
    "collector_paused",
    "delete_record",
    "record_at",
    "register_chunk",
]
