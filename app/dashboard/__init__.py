"""The live operator dashboard: per-process sampler of the metrics registry, recent errors,
and operator sessions. Its HTTP side is ``app/api/dashboard.py``."""

from __future__ import annotations

from dataclasses import dataclass

from app.dashboard.recent import RecentErrors
from app.dashboard.sampler import Sampler
from app.dashboard.sessions import Sessions

__all__ = ["Dashboard", "RecentErrors", "Sampler", "Sessions"]


@dataclass(frozen=True)
class Dashboard:
    """What the dashboard runs on in one process (built by the lifespan)."""

    sampler: Sampler
    errors: RecentErrors
    sessions: Sessions
