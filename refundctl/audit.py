"""`refundctl audit verify`: walk the hash-chained audit log and name the first entry that
was edited, or the gap where one was deleted. Exit 1 when the chain is broken."""

from __future__ import annotations

import argparse
import asyncio

from config.settings import get_settings
from store import audit
from store.db import make_engine, make_session_factory


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["verify"])
    parser.add_argument("--database-url", default=None)


async def verify(database_url: str) -> audit.Verification:
    engine = make_engine(database_url)
    try:
        async with make_session_factory(engine)() as session:
            return await audit.verify(session)
    finally:
        await engine.dispose()


def run(args: argparse.Namespace) -> int:
    result = asyncio.run(verify(args.database_url or get_settings().database_url))
    if result.ok:
        print(f"audit log intact: {result.entries} entries, every hash chains to the previous one")
        return 0
    print(f"AUDIT LOG BROKEN at entry {result.first_bad_seq}: {result.problem}")
    return 1
