"""How long to wait before trying again after failures: one rule for every retry loop."""

from __future__ import annotations

import random


def jittered(failures: int, *, cap: float, first: float = 1.0) -> float:
    """Exponential from ``first`` seconds (after one failure), capped at ``cap``, with jitter
    so that several processes (or nodes) do not retry in step against something that is
    recovering."""
    ceiling = min(cap, first * 2.0 ** (failures - 1))
    return ceiling * random.uniform(0.5, 1.0)  # noqa: S311 (jitter, not secrecy)
