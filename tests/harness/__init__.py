"""Building blocks for the test fixtures (tests/conftest.py wires them into pytest).

The processes themselves are started by `refundctl.stack`, the same code `refundctl dev`,
`refundctl bench` and `refundctl chaos` use; what is test-specific here is the database (a
fresh one per session, PostgreSQL when CI asks for it) and a Temporal server per session:

```
@pytest.fixture(scope="session")
async def temporal_address() -> AsyncIterator[str]:
    async with temporal_dev_server() as address:
        yield address

@pytest.fixture(scope="session")
async def database_url(tmp_path_factory) -> AsyncIterator[str]:
    async with session_database(tmp_path_factory.mktemp("db")) as url:
        yield url
```

A test that needs a worker it can SIGKILL describes it as a subprocess `WorkerSpec` of its stack
(tests/crash/conftest.py) and uses `stack.process(name)`: `kill()`, `start()`, `wait_ready()`.
"""

from refundctl.procs import ChildProcess, ProcessExited, free_port, free_ports
from refundctl.ready import wait_for_http, wait_for_port
from tests.harness.commands import run_refundctl
from tests.harness.database import drop_database, postgres_or_sqlite_url, session_database
from tests.harness.temporal import temporal_dev_server

__all__ = [
    "ChildProcess",
    "ProcessExited",
    "drop_database",
    "free_port",
    "free_ports",
    "postgres_or_sqlite_url",
    "run_refundctl",
    "session_database",
    "temporal_dev_server",
    "wait_for_http",
    "wait_for_port",
]
