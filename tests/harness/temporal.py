"""A real Temporal dev server for integration tests, configured from temporal-dev.yml."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from refundctl.devserver import start_dev_server
from refundctl.procs import free_port, log_sink


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
    with contextlib.ExitStack() as stack:
        directory = db_dir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        async with start_dev_server(
            port=free_port(),
            ui_port=None,
            headless=True,
            db_file=directory / "temporal.db",
            output=log_sink("temporal"),
            startup_timeout_seconds=startup_timeout_seconds,
        ) as server:
            yield server.address
