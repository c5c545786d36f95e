"""Which database the tests use: PostgreSQL when CI exports DATABASE_URL, else SQLite."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

from sqlalchemy.engine import URL, make_url

_SAFE_NAME = re.compile(r"^[a-z0-9_]+$")


def _is_postgres(url: URL) -> bool:
    return url.get_backend_name() == "postgresql"


def _asyncpg_dsn(url: URL) -> str:
    # asyncpg speaks plain libpq URLs, without SQLAlchemy's "+driver" part.
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def postgres_or_sqlite_url(tmp_path: Path) -> str:
    """A DATABASE_URL for one test session, never shared with another run.

    - DATABASE_URL set to PostgreSQL (CI, via .ci/postgres.sh): a fresh database
      `kami_test_<random>` is created next to the configured one and its URL returned, so
      concurrent or repeated runs never see each other's rows. Drop it with `drop_database`
      (or use `session_database`, which does).
    - Otherwise: a new SQLite file in `tmp_path`. A SQLite DATABASE_URL from the environment is
      ignored on purpose: reusing one file across runs would leak state between them.

    The schema is not created here; run the migrations (`refundctl migrate`) against the URL.
    """
    configured = os.environ.get("DATABASE_URL", "")
    if configured and _is_postgres(make_url(configured)):
        return await _create_postgres_database(make_url(configured))
    return f"sqlite+aiosqlite:///{tmp_path / 'kami-test.db'}"


async def _create_postgres_database(base: URL) -> str:
    import asyncpg  # only needed, and only installed for sure, when testing on PostgreSQL

    name = f"kami_test_{secrets.token_hex(6)}"
    connection = await asyncpg.connect(_asyncpg_dsn(base))
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return base.set(database=name).render_as_string(hide_password=False)


async def drop_database(url: str) -> None:
    """Drop a PostgreSQL database made by `postgres_or_sqlite_url` (SQLite: nothing to do).

    FORCE ends sessions still open (a killed worker's pool, an engine a test forgot to dispose)
    that would otherwise make DROP fail.
    """
    target = make_url(url)
    configured = os.environ.get("DATABASE_URL", "")
    if not _is_postgres(target) or not configured:
        return
    name = target.database or ""
    if not name.startswith("kami_test_") or not _SAFE_NAME.match(name):
        raise ValueError(f"refusing to drop {name!r}: not a database made by the test harness")
    import asyncpg

    connection = await asyncpg.connect(_asyncpg_dsn(make_url(configured)))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def session_database(tmp_path: Path) -> AsyncIterator[str]:
    """`postgres_or_sqlite_url` that also drops the PostgreSQL database afterwards."""
    url = await postgres_or_sqlite_url(tmp_path)
    try:
        yield url
    finally:
        await drop_database(url)
