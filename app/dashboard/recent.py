"""The node's recent warnings and errors, for the dashboard.

A logging handler keeps the last WARNING+ records of this process in a bounded deque. With
several worker processes each keeps its own, so a dashboard shows those of the worker its
stream happens to be served by.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["RecentErrors"]

_LONGEST = 300  # characters of a message shown; the full record is in the node's log


class RecentErrors(logging.Handler):
    """The last ``capacity`` WARNING+ log records, newest first in :meth:`entries`."""

    def __init__(self, capacity: int = 50) -> None:
        super().__init__(logging.WARNING)
        self._entries: deque[dict[str, Any]] = deque(maxlen=capacity)
        self._last: logging.LogRecord | None = None

    def emit(self, record: logging.LogRecord) -> None:
        # Installed on the root logger and on servers' loggers that do not propagate to it;
        # a record reaching both (when a server left its logging alone) is kept once.
        if record is self._last:
            return
        self._last = record
        message = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            message = f"{message}: {type(error).__name__}: {error}"
        self._entries.append(
            {
                "t": record.created,
                "level": record.levelname,
                "logger": record.name,
                "message": message[:_LONGEST],
            }
        )

    def entries(self, limit: int = 20) -> list[dict[str, Any]]:
        return list(reversed(self._entries))[:limit]

    @contextmanager
    def installed(self, *loggers: str) -> Iterator[RecentErrors]:
        """Attach to the root logger and ``loggers`` until exit."""
        targets = [logging.getLogger(), *(logging.getLogger(name) for name in loggers)]
        for target in targets:
            target.addHandler(self)
        try:
            yield self
        finally:
            for target in targets:
                target.removeHandler(self)
