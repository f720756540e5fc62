"""Counts this process keeps for the statistics reports (``app/reporting/statistics.py``).

Errors are answered in several places (the routed error handlers, the lean resolve path), none
of which holds the node's objects, so the count is one per process, like the process itself;
the statistics read it as a difference between two samples, never reset it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class ProcessCounters:
    errors: int = 0  # answers with a 5xx status (internal errors, unreachable upstream)


process = ProcessCounters()


def count_answer(status: int) -> None:
    if status >= 500:
        process.errors += 1
