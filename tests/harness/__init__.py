"""Building blocks for the test fixtures (tests/conftest.py wires them into pytest).

Plain functions and async context managers, so a fixture decides its own scope:

```
@pytest.fixture(scope="session")
async def temporal_address() -> AsyncIterator[str]:
    async with temporal_dev_server() as address:
        yield address

@pytest.fixture(scope="session")
async def database_url(tmp_path_factory) -> AsyncIterator[str]:
    async with session_database(tmp_path_factory.mktemp("db")) as url:
        yield url

async def test_worker_crash(temporal_address, database_url, tmp_path):
    async with worker_process(temporal_address=temporal_address, database_url=database_url) as w:
        await wait_for_worker(temporal_address, w)
        ...
        await w.kill()                      # SIGKILL mid-refund
        await w.start()                     # a fresh worker resumes the workflow
        await wait_for_worker(temporal_address, w)
```
"""

from refundctl.procs import ChildProcess, ProcessExited, free_port, wait_for_http, wait_for_port
from tests.harness.database import drop_database, postgres_or_sqlite_url, session_database
from tests.harness.processes import refundctl_process, wait_for_worker, worker_process
from tests.harness.temporal import temporal_dev_server

__all__ = [
    "ChildProcess",
    "ProcessExited",
    "drop_database",
    "free_port",
    "postgres_or_sqlite_url",
    "refundctl_process",
    "session_database",
    "temporal_dev_server",
    "wait_for_http",
    "wait_for_port",
    "wait_for_worker",
    "worker_process",
]
