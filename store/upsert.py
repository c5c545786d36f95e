"""INSERT ... ON CONFLICT DO NOTHING for both dialects: the one primitive behind every
write that an activity retry or a repeated request may perform twice."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase


async def insert_ignore(
    session: AsyncSession, model: type[DeclarativeBase], rows: list[dict[str, Any]]
) -> int:
    """Insert rows, skipping those whose key already exists. Returns how many were new."""
    if not rows:
        return 0
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    table: Table = model.__table__  # type: ignore[assignment]
    stmt: Any
    if dialect == "postgresql":
        stmt = postgresql.insert(table).values(rows).on_conflict_do_nothing()
    else:
        stmt = sqlite.insert(table).values(rows).on_conflict_do_nothing()
    result = await session.execute(stmt)
    return int(getattr(result, "rowcount", 0) or 0)


async def insert_or_add(
    session: AsyncSession,
    model: type[DeclarativeBase],
    rows: list[dict[str, Any]],
    *,
    key: tuple[str, ...],
    add: str,
) -> None:
    """INSERT rows, or add their `add` column to the row already under `key` (taking the
    other columns from the new row): running balances in one statement, for both dialects."""
    if not rows:
        return
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    table: Table = model.__table__  # type: ignore[assignment]
    stmt: Any = (postgresql if dialect == "postgresql" else sqlite).insert(table).values(rows)
    changed = {c: stmt.excluded[c] for c in rows[0] if c not in key}
    changed[add] = table.c[add] + stmt.excluded[add]
    await session.execute(stmt.on_conflict_do_update(index_elements=list(key), set_=changed))
