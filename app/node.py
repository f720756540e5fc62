"""The objects one node process runs on, built by the lifespan in ``app.main``."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import jinja2

from app.i18n import Languages
from app.registry.identifiers import ScanRecorder
from app.settings import Settings
from app.storage.database import Database
from app.throttle import AttemptLimiter
from resolver.engine import Resolver


@dataclass
class Activity:
    """What this process's HTTP layer did, in plain ints (``app/monitoring.py`` exports them)."""

    registrations: Counter[str] = field(default_factory=Counter)  # by channel: api, batch
    recalls: Counter[str] = field(default_factory=Counter)  # by action: recall, undo


@dataclass(frozen=True)
class Node:
    settings: Settings
    database: Database
    resolver: Resolver
    pages: jinja2.Environment
    languages: Languages
    scans: ScanRecorder
    attempts: AttemptLimiter  # failed authentication, throttled
    activity: Activity = field(default_factory=Activity)

    @property
    def operator_token(self) -> str | None:
        token = self.settings.admin_token
        return token.get_secret_value() if token is not None else None
