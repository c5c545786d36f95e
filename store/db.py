"""Engine and sessions. SQLite (one file, shared by the API and worker processes) by
default; PostgreSQL when DATABASE_URL says so."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

SessionFactory = async_sessionmaker[AsyncSession]
READ_ONLY = "kami_read_only"


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def make_engine(
    url: str,
    *,
    pool_size: int | None = None,
    max_overflow: int | None = None,
    pool_timeout: float | None = None,
    **kwargs: Any,
) -> AsyncEngine:
    """`pool_*` left out keep the defaults below; the API passes its settings."""
    pool = {
        name: value
        for name, value in (
            ("pool_size", pool_size),
            ("max_overflow", max_overflow),
            ("pool_timeout", pool_timeout),
        )
        if value is not None
    }
    if is_sqlite(url):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        else:
            pool = {}  # an in-memory database has a single static connection, no pool
        engine = create_async_engine(url, connect_args={"timeout": 30}, **pool, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            # WAL lets the API read while the worker writes; a busy writer waits instead of
            # failing. synchronous=NORMAL is durable against process crashes under WAL.
            dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _begin(conn: Any) -> None:
            # Writers take the write lock at BEGIN: two of them then queue on busy_timeout
            # instead of failing when both try to upgrade a read lock ("database is locked").
            # Readers must not: under WAL they never block anyone, and making every GET wait
            # for the lock cost the benchmark a quarter of its refunds per second.
            if conn.get_execution_options().get(READ_ONLY):
                conn.exec_driver_sql("BEGIN")
            else:
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    pool = {"pool_size": 10, "max_overflow": 10, **pool}
    return create_async_engine(url, pool_pre_ping=True, **pool, **kwargs)


def make_session_factory(engine: AsyncEngine) -> SessionFactory:
    """Sessions that write (or may): on SQLite they hold the write lock from BEGIN.

    On a SQLite file, the writers of one process take turns on a connection of their own,
    first come first served, instead of polling SQLite's lock with the busy handler's sleeps
    of up to 100 ms (measured: those sleeps were most of the worker's p99 under load).
    Writers in other processes still meet at SQLite's lock."""
    return async_sessionmaker(_writer(engine), expire_on_commit=False)


_WRITER = "kami_writer"


def _writer(engine: AsyncEngine) -> AsyncEngine:
    url = engine.url.render_as_string(hide_password=False)
    if not is_sqlite(url) or url.endswith(":memory:") or url.endswith(":///"):
        return engine
    writer: AsyncEngine | None = engine.sync_engine.__dict__.get(_WRITER)
    if writer is None:
        writer = make_engine(url, pool_size=1, max_overflow=0, pool_timeout=60)
        engine.sync_engine.__dict__[_WRITER] = writer

        @event.listens_for(engine.sync_engine, "engine_disposed")
        def _dispose_writer(_: Any) -> None:
            # Runs inside AsyncEngine.dispose()'s greenlet: the writer's connections close too.
            writer.sync_engine.dispose()

    return writer


def make_read_session_factory(engine: AsyncEngine) -> SessionFactory:
    """Sessions that only read: plain snapshots, never waiting on writers. Writing through
    one on SQLite may fail with "database is locked"; use `make_session_factory` for that."""
    return async_sessionmaker(engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False)
