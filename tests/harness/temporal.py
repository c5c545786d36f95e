"""A real Temporal dev server for integration tests, configured from temporal-dev.yml."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from config.settings import Settings
from refundctl.stack import DevServerSpec, LogSpec, StackSpec, start_stack


@contextlib.asynccontextmanager
async def temporal_dev_server(
    *, db_dir: Path | None = None, startup_timeout_seconds: float = 90.0
) -> AsyncIterator[str]:
    """Start a headless dev server on a free port with a throwaway SQLite file; yield its address.

    Meant for a session-scoped fixture: starting takes a second or two, and workflows of
    different tests are kept apart by their ids. The server's output goes to the
    `refundctl.child.temporal` logger, so pytest shows it only for failing tests. The search
    attributes of the CONTRACT are registered before this yields.
    """
    with contextlib.ExitStack() as files:
        directory = db_dir or Path(files.enter_context(tempfile.TemporaryDirectory()))
        spec = StackSpec(
            settings=Settings(environment="test"),
            temporal=DevServerSpec(
                headless=True,
                db_file=directory / "temporal.db",
                startup_timeout_seconds=startup_timeout_seconds,
            ),
            logs=LogSpec(to_logging=True),
        )
        async with start_stack(spec) as stack:
            yield stack.temporal_address
