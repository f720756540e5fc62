"""The arithmetic behind read replicas: WAL positions, a replica's lag, which identifiers a
replica may answer, and where each read goes (app/storage/replicas.py). The real streaming
replica is in tests/test_replicas.py."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from app.storage.invalidation import EVERYTHING
from app.storage.replicas import (
    Freshness,
    LsnHistory,
    Replica,
    Replicas,
    parse_lsn,
    wal_end,
)

BLOCK, SEGMENT = 8192, 16 * 1024 * 1024


def test_positions_are_read_as_numbers() -> None:
    assert parse_lsn("0/0") == 0
    assert parse_lsn("16/B374D848") == (0x16 << 32) | 0xB374D848
    assert parse_lsn("1/0") > parse_lsn("0/FFFFFFFF")
    with pytest.raises(ValueError, match="not an LSN"):
        parse_lsn("B374D848")


def test_an_insert_position_past_a_page_header_means_the_page_boundary() -> None:
    # A fresh cluster: insert 0/3000028, while a replica that replayed everything says
    # 0/3000000 (the segment's first page has the 40-byte header).
    assert wal_end(parse_lsn("0/3000028"), block=BLOCK, segment=SEGMENT) == parse_lsn("0/3000000")
    assert wal_end(3 * BLOCK + 24, block=BLOCK, segment=SEGMENT) == 3 * BLOCK
    assert wal_end(SEGMENT + 40, block=BLOCK, segment=SEGMENT) == SEGMENT
    for inside in (3 * BLOCK + 48, 3 * BLOCK + 4000, SEGMENT + 64, 3 * BLOCK):
        assert wal_end(inside, block=BLOCK, segment=SEGMENT) == inside


def test_lag_is_how_long_ago_the_primary_was_where_the_replica_is() -> None:
    history = LsnHistory(span=30)
    for second in range(11):
        history.add(float(second), 100 * second)  # the primary writes 100 bytes a second
    assert history.lag(1000, now=10.5) == 0  # caught up
    assert history.lag(450, now=10.5) == pytest.approx(5.5)  # the primary passed 450 at 5
    assert history.lag(0, now=10.5) == pytest.approx(9.5)


def test_an_idle_primary_gives_no_lag_however_long_it_idles() -> None:
    history = LsnHistory(span=30)
    for second in range(100):
        history.add(float(second), 700)
    assert history.lag(700, now=100) == 0


def test_a_replica_behind_every_kept_sample_lags_at_least_the_span() -> None:
    history = LsnHistory(span=10)
    for second in range(100):
        history.add(float(second), 100 * second)
    assert history.lag(5, now=99) >= 10


class Primary:
    """The primary's WAL position, as the test sets it; counts the reads."""

    def __init__(self) -> None:
        self.position = 0
        self.reads = 0
        self.fail = 0
        self.gate: asyncio.Event | None = None

    async def read(self) -> int:
        self.reads += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            self.fail -= 1
            raise OSError("connection refused")
        return self.position


def listening(freshness: Freshness) -> Freshness:
    freshness.listening = True
    return freshness


async def _settled(freshness: Freshness) -> None:
    for _ in range(100):
        await asyncio.sleep(0)
        if freshness.required_for_all() is not None:
            return
    raise AssertionError("the position was never read")


async def test_a_noticed_identifier_is_primary_only_until_the_position_is_read() -> None:
    primary = Primary()
    freshness = listening(Freshness(primary.read, keep=15))
    primary.position = 500
    freshness.noticed(["88.1/a"])
    assert freshness.required("88.1/a") is None
    assert freshness.required("88.1/b") == 0
    assert freshness.required_for_all() is None
    await _settled(freshness)
    assert freshness.required("88.1/a") == 500
    assert freshness.required("88.1/b") == 0
    assert freshness.required_for_all() == 500

    primary.position = 700
    freshness.noticed([EVERYTHING])
    assert freshness.required("88.1/b") is None
    await _settled(freshness)
    assert freshness.required("88.1/b") == 700
    assert freshness.required("88.1/a") == 700  # the floor is above its own position
    await freshness.close()


async def test_nothing_is_read_from_a_replica_while_notices_cannot_arrive() -> None:
    primary = Primary()
    freshness = Freshness(primary.read, keep=15)
    freshness.noticed(["88.1/a"])  # a process without a listener: nothing to keep
    await asyncio.sleep(0)
    assert primary.reads == 0
    assert freshness.required("88.1/a") is None
    assert freshness.required_for_all() is None
    freshness.listening = True
    assert freshness.required("88.1/a") == 0
    freshness.listening = False  # the listener's connection dropped
    assert freshness.required("88.1/a") is None


async def test_one_read_of_the_position_per_burst_of_notices() -> None:
    primary = Primary()
    freshness = listening(Freshness(primary.read, keep=15))
    primary.gate = asyncio.Event()
    for n in range(5000):
        freshness.noticed([f"88.1/{n}"])
    await asyncio.sleep(0)
    assert primary.reads == 1
    freshness.noticed(["88.1/late"])  # while the read is under way: needs a read of its own
    primary.position = 900
    primary.gate.set()
    await _settled(freshness)
    assert primary.reads == 2
    assert freshness.required("88.1/17") == freshness.required("88.1/late") == 900
    await freshness.close()


async def test_a_failed_read_leaves_them_primary_only_and_is_tried_again() -> None:
    primary = Primary()
    primary.fail, primary.position = 1, 300
    freshness = listening(Freshness(primary.read, keep=15))
    freshness.noticed(["88.1/a"])
    await asyncio.sleep(0)
    assert primary.reads == 1
    assert freshness.required("88.1/a") is None
    for _ in range(500):  # read again after a pause: within 5 s on any machine
        if freshness.required("88.1/a") is not None:
            break
        await asyncio.sleep(0.01)
    assert freshness.required("88.1/a") == 300
    assert primary.reads == 2
    await freshness.close()


async def test_old_entries_are_folded_into_the_floor() -> None:
    now = [0.0]
    primary = Primary()
    freshness = listening(Freshness(primary.read, keep=15, clock=lambda: now[0]))
    primary.position = 100
    freshness.noticed(["88.1/old"])
    await _settled(freshness)
    now[0], primary.position = 20.0, 200
    freshness.noticed(["88.1/new"])
    await _settled(freshness)
    assert len(freshness) == 1  # the old entry is gone ...
    assert freshness.floor == 100  # ... but what it required is still required of everyone
    assert freshness.required("88.1/old") == 100
    assert freshness.required("88.1/new") == 200
    await freshness.close()


async def test_a_bulk_load_does_not_grow_the_map_beyond_its_bound() -> None:
    primary = Primary()
    freshness = listening(Freshness(primary.read, keep=15, most=100))
    primary.position = 100
    freshness.noticed([f"88.1/a{n}" for n in range(80)])
    await _settled(freshness)
    primary.position = 200
    freshness.noticed([f"88.1/b{n}" for n in range(50)])
    await _settled(freshness)
    assert len(freshness) == 100
    assert freshness.floor == 100  # what the 30 dropped required
    assert freshness.required("88.1/a0") == 100
    assert freshness.required("88.1/b0") == 200
    primary.position = 300
    freshness.noticed([f"88.1/c{n}" for n in range(5000)])  # one bulk load
    assert freshness.required("88.1/anything") is None
    await _settled(freshness)
    assert freshness.floor == 300
    assert freshness.required("88.1/c4999") == freshness.required("88.1/x") == 300
    await freshness.close()


def _replica(name: str, replayed: int, problem: str | None) -> Replica:
    nothing = cast(Any, None)
    return Replica(name, nothing, nothing, nothing, nothing, nothing, replayed, 0.0, problem)


async def test_a_read_goes_to_a_replica_in_use_that_replayed_enough() -> None:
    async def position() -> int:
        return 0

    up, down = _replica("r1", 100, None), _replica("r2", 0, "down: refused")
    behind = _replica("r3", 50, None)
    replicas = Replicas([down, behind, up], Freshness(position, keep=15), position, max_lag=5)
    assert replicas.pick(100) is up
    assert replicas.pick(40) in (behind, up)
    assert replicas.pick(101) is None  # nobody replayed it: the primary
    assert replicas.pick(None) is None  # primary only
    assert replicas.reads == {"replica": 2, "primary": 2}
    assert [r["state"] for r in replicas.report()] == [
        "skipped: down: refused",
        "in use",
        "in use",
    ]
