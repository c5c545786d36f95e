"""Set-up written straight to the bench stack's database, behind the API's back.

`--backlog` and `--incident` need thousands of orders (and, for the backlog, refunds) before
they measure anything; through the HTTP API that would take longer than the measurement. The
same store functions the API uses write them here, one transaction per batch, so the rows are
exactly what the API would have stored."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from bench.stack import BenchStack

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from store.db import SessionFactory

T = TypeVar("T")

BATCH = 500


@contextlib.asynccontextmanager
async def database(stack: BenchStack) -> AsyncIterator[SessionFactory]:
    """Sessions on the stack's database, the engine disposed of afterwards."""
    from store.db import make_engine, make_session_factory

    engine = make_engine(stack.database_url)
    try:
        yield make_session_factory(engine)
    finally:
        await engine.dispose()


async def write_in_batches(
    sessions: SessionFactory,
    n: int,
    write: Callable[[AsyncSession, int], Awaitable[T]],
    *,
    label: str,
    after_batch: Callable[[list[T]], Awaitable[None]] | None = None,
) -> None:
    """`write(session, serial)` for serial in range(n), `BATCH` to a transaction; then
    `after_batch` with what the batch's writes returned (e.g. to start their workflows once
    their rows are committed)."""
    for first in range(0, n, BATCH):
        written: list[T] = []
        async with sessions.begin() as session:
            for serial in range(first, min(first + BATCH, n)):
                written.append(await write(session, serial))
        if after_batch is not None:
            await after_batch(written)
        say(f"  {label}: {min(first + BATCH, n)} of {n}")


def say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)
