"""Running a batch: items in chunks, each chunk in its own transaction.

Like the request dependency (``app/api/deps.py: write_session``) this owns the transactions, so
the service (``app/registry/bulk.py``) stays free of commits. Non-atomic, a chunk of
``chunk_rows`` items commits on its own and a later failure never undoes it; atomic, every
chunk runs in one transaction that commits only when every item was accepted.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.registry.bulk import Batch, Item, Result, register_chunk

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
        if not self.atomic:
            async for chunk in chunks(items, self.chunk_rows):
                async with self.sessions() as session:
                    results = await self._register(session, chunk)
                    await self._commit(session)
                yield results
            return
        async with self.sessions() as session:
            async for chunk in chunks(items, self.chunk_rows):
                # Later chunks still run after a rejection, so the answer names every
                # problem; their writes go when the transaction is rolled back.
                yield await self._register(session, chunk)
            if self.rejected == 0:
                await self._commit(session)

    async def _register(self, session: AsyncSession, chunk: list[Item]) -> list[Result]:
        results = await register_chunk(session, self.batch, chunk)
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
