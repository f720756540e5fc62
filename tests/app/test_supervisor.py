"""The supervisor: a crashed task is logged, counted, restarted, and reported when it keeps
failing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.main import create_app
from app.settings import Settings
from app.supervisor import FAILING_AFTER, Supervisor, idle
from tests.app.test_metrics import scrape, value
from tests.conftest import _empty_tables


class Flaky:
    """A loop that crashes on its first ``crashes`` runs, then runs until cancelled."""

    def __init__(self, crashes: int) -> None:
        self.runs = 0
        self.crashes = crashes
        self.steady = asyncio.Event()

    async def run(self) -> None:
        self.runs += 1
        if self.runs <= self.crashes:
            raise RuntimeError(f"crash {self.runs}")
        self.steady.set()
        await asyncio.Event().wait()


async def test_a_crashed_task_is_logged_restarted_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    supervisor = Supervisor(max_backoff=0.01)
    flaky = Flaky(crashes=2)
    with caplog.at_level(logging.ERROR, logger="app.supervisor"):
        supervised = supervisor.start("test.flaky", flaky.run)
        await asyncio.wait_for(flaky.steady.wait(), 5)
    try:
        assert flaky.runs == 3
        assert supervised.restarts == 2
        crashes = [r for r in caplog.records if r.getMessage() == "app.supervisor.task_crashed"]
        assert len(crashes) == 2
        assert crashes[0].exc_info is not None  # with its traceback
        assert str(crashes[0].exc_info[1]) == "crash 1"
        assert supervisor.failing() == []  # two crashes are not "keeps failing"
    finally:
        await supervised.stop()
    assert supervised.task is not None
    assert supervised.task.done()


@pytest.fixture
async def node(settings: Settings) -> AsyncIterator[Any]:
    await _empty_tables(settings.database_url)
    application = create_app(settings.model_copy(update={"task_max_backoff": 0.01}))
    async with application.router.lifespan_context(application):
        yield application


async def test_a_task_that_keeps_failing_makes_the_node_unready(node: Any) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=node), base_url="http://idnode.test"
    ) as client:
        assert (await client.get("/readyz")).status_code == 200
        before = value(await scrape(client), "idnode_task_restarts_total", task="test.broken")
        broken = Flaky(crashes=10**9)
        supervised = node.state.supervisor.start("test.broken", broken.run)
        try:
            async with asyncio.timeout(10):
                while supervised.restarts < FAILING_AFTER:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            assert any("test.broken" in reason for reason in ready.json()["reasons"])
            after = value(await scrape(client), "idnode_task_restarts_total", task="test.broken")
            assert after - before >= FAILING_AFTER
        finally:
            await supervised.stop()


async def test_stopping_a_loop_that_let_the_cancellation_slip_still_ends_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Python 3.11's ``asyncio.wait_for`` returns the result instead of raising when the
    cancellation arrives as the awaited event is set; the loop then runs on. Stopping it at
    shutdown must not wait forever (a node that never exits on SIGTERM)."""
    woken = asyncio.Event()

    async def slippery() -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), 0.05)
            woken.clear()

    supervised = Supervisor().start("test.slippery", slippery)
    await asyncio.sleep(0.01)
    woken.set()  # in the same step as the cancellation below: wait_for drops it
    with caplog.at_level(logging.WARNING, logger="app.supervisor"):
        await asyncio.wait_for(supervised.stop(), 5)
    assert supervised.task is not None
    assert supervised.task.cancelled()
    messages = [r.getMessage() for r in caplog.records]
    assert "app.supervisor.stop_ignored" in messages  # it did slip: the retry ended it


@pytest.mark.parametrize("woken_at_cancel", [True, False])
async def test_idle_never_loses_a_cancellation(woken_at_cancel: bool) -> None:
    event = asyncio.Event()

    async def loop() -> None:
        while True:
            await idle(event, 0.05)
            event.clear()

    task = asyncio.create_task(loop())
    await asyncio.sleep(0.01)
    if woken_at_cancel:
        event.set()
    task.cancel()
    await asyncio.wait({task}, timeout=1)
    assert task.cancelled()


async def test_a_loop_told_to_stop_ends_by_itself_within_the_grace() -> None:
    """At shutdown a loop gets to finish what it is doing (the NB-IoT applier its push)
    instead of being cancelled in the middle of a transaction."""
    stopping = asyncio.Event()
    finished: list[str] = []

    async def careful() -> None:
        await stopping.wait()
        await asyncio.sleep(0.05)  # the work under way when told
        finished.append("push")

    supervised = Supervisor().start("test.careful", careful)
    stopping.set()
    await supervised.stop(grace=2)
    assert finished == ["push"]
    assert supervised.task is not None
    assert not supervised.task.cancelled()
