"""Test doubles shared by the resolver's tests."""

from __future__ import annotations

import asyncio
from typing import Any

from resolver.values import HandleValue

T0 = 1000.0


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def at(self, offset: float) -> None:
        self.now = T0 + offset


def hv(index: int, vtype: str, data: Any = "x", **fields: Any) -> HandleValue:
    """A string value."""
    return HandleValue(index=index, type=vtype, format="string", value=data, **fields)


async def settle() -> None:
    """Let the event loop run the tasks that are ready, so every concurrent caller reaches
    its ``await``."""
    for _ in range(5):
        await asyncio.sleep(0)
