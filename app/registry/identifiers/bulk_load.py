"""Running a batch: items in chunks, each chunk in its own transaction.

Like the request dependency (``app/api/deps.py: write_session``) this owns the transactions, so
the service (``app/registry/identifiers/bulk.py``) stays free of commits. Non-atomic, a chunk of
``chunk_rows`` items commits on its own and a later failure never undoes it; atomic, every
chunk runs in one transaction that commits only when every item was accepted.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.registry.identifiers.bulk import (
    Batch,
    Item,
    Result,
    prepare_chunk,
    register_chunk,
    write_chunk,
)

CHUNK_ROWS = 10_000


@dataclass
class BulkLoad:
    """One batch; ``accepted``/``rejected`` count as it goes, ``committed`` says whether an
    atomic batch was written."""

    sessions: async_sessionmaker[AsyncSession]
    batch: Batch
    atomic: bool = False
    chunk_rows: int = CHUNK_ROWS
    after_commit: Callable[[AsyncSession], None] | None = None
    accepted: int = 0
    rejected: int = 0
    committed: bool = False

    async def run(self, items: AsyncIterable[Item]) -> AsyncIterator[list[Result]]:
        """The results of each chunk, in order, as it is done."""
        if not self.atomic and self._overlapping():
            async for results in self._pipelined(items):
                yield results
            return
        if not self.atomic:
            async for chunk in chunks(items, self.chunk_rows):
                yield self._count(await self._chunk(chunk, after=[]))
            return
        async with self.sessions() as session:
            async for chunk in chunks(items, self.chunk_rows):
                # Later chunks still run after a rejection, so the answer names every
                # problem; their writes go when the transaction is rolled back.
                with collector_paused():
                    results = await register_chunk(session, self.batch, chunk)
                yield self._count(results)
            if self.rejected == 0:
                await self._commit(session)

    async def _pipelined(self, items: AsyncIterable[Item]) -> AsyncIterator[list[Result]]:
        """Non-atomic: each chunk in its own transaction, checked while the chunk before it
        is written (the node's CPU and the database's work overlap) and written only after
        that chunk has committed, so chunks commit in order and at most two are in hand."""
        going: list[asyncio.Task[list[Result]]] = []
        checked: asyncio.Event | None = None  # set when the chunk before has been checked
        source = aiter(chunks(items, self.chunk_rows))
        try:
            while True:
                try:
                    chunk = await anext(source)
                except StopAsyncIteration:
                    break
                except Exception:
                    # The items stopped (a body too large, say): what was read is still
                    # written and answered, as without the overlap.
                    while going:
                        yield self._count(await going.pop(0))
                    raise
                mine = asyncio.Event()
                work = self._chunk(chunk, after=going[-1:], turn=(checked, mine))
                going.append(asyncio.create_task(work))
                checked = mine
                if len(going) == 2:
                    yield self._count(await going.pop(0))
            while going:
                yield self._count(await going.pop(0))
        finally:
            for task in going:  # stopped early: chunks still going are not answered
                task.cancel()
            await asyncio.gather(*going, return_exceptions=True)

    async def _chunk(
        self,
        chunk: list[Item],
        *,
        after: list[asyncio.Task[list[Result]]],
        turn: tuple[asyncio.Event | None, asyncio.Event] | None = None,
    ) -> list[Result]:
        with collector_paused():
            async with self.sessions() as session:
                # Chunks are checked in order: checking takes the enterprise's idempotency
                # key lock until the chunk commits, so a chunk that took it before the chunk
                # it waits for would wait for itself.
                try:
                    if turn is not None and turn[0] is not None:
                        await turn[0].wait()
                    prepared = await prepare_chunk(session, self.batch, chunk)
                finally:
                    if turn is not None:
                        turn[1].set()
                if after:
                    # Its own failure reaches whoever awaits it; this one does not write.
                    await asyncio.wait(after)
                    if after[0].cancelled() or after[0].exception() is not None:
                        raise asyncio.CancelledError
                results = await write_chunk(session, self.batch, prepared)
                await self._commit(session)
        return results

    def _overlapping(self) -> bool:
        """Whether one chunk can be checked while another is written: on PostgreSQL. SQLite
        has one writer at a time, and a write transaction holds it from its first read."""
        bind = self.sessions.kw.get("bind")
        return bind is not None and bind.dialect.name == "postgresql"

    def _count(self, results: list[Result]) -> list[Result]:
        rejected = sum(1 for r in results if "error" in r)
        self.rejected += rejected
        self.accepted += len(results) - rejected
        return results

    async def _commit(self, session: AsyncSession) -> None:
        await session.commit()
        self.committed = True
        if self.after_commit is not None:
            self.after_commit(session)


async def chunks(items: AsyncIterable[Item], size: int) -> AsyncIterator[list[Item]]:
    chunk: list[Item] = []
    async for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


_pauses = 0


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while a chunk is registered. Every object a chunk builds
    lives until its rows are written, so collections in between free nothing, yet they
    rescan the whole chunk again and again: a third of the CPU a chunk costs. Reference
    counting still frees memory as usual; concurrent batches keep it paused until the
    last is done."""
    global _pauses
    if _pauses == 0:
        gc.disable()
    _pauses += 1
    try:
        yield
    finally:
        _pauses -= 1
        if _pauses == 0:
            gc.enable()
