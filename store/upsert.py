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
