"""Reviewer-console accounts and sessions. Hashing is the caller's (the API's): this module
stores what it is given — a password hash, the SHA-256 of a session token — and nothing that
would let a reader of the database sign in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from store.models import ConsoleAccountRow, ConsoleSessionRow


@dataclass(frozen=True)
class Account:
    username: str
    display_name: str
    role: str
    password_hash: str
    disabled: bool


@dataclass(frozen=True)
class Session:
    reviewer: str
    display_name: str
    role: str
    via: str
    csrf: str
    expires_at: datetime


async def put_account(
    session: AsyncSession,
    *,
    username: str,
    display_name: str,
    role: str,
    password_hash: str | None,
    disabled: bool = False,
    now: datetime,
) -> bool:
    """Create or update an account; `password_hash` None keeps the current password.
    Returns whether it was created. A new account needs a password."""
    row = await session.get(ConsoleAccountRow, username)
    if row is None:
        if password_hash is None:
            raise ValueError("a new account needs a password")
        session.add(
            ConsoleAccountRow(
                username=username,
                display_name=display_name,
                role=role,
                password_hash=password_hash,
                disabled=disabled,
                created_at=now,
                updated_at=now,
            )
        )
        return True
    row.display_name, row.role, row.disabled, row.updated_at = display_name, role, disabled, now
    if password_hash is not None:
        row.password_hash = password_hash
    if disabled:  # a disabled person is signed out everywhere
        await session.execute(
            delete(ConsoleSessionRow).where(ConsoleSessionRow.reviewer == username)
        )
    return False


async def get_account(session: AsyncSession, username: str) -> Account | None:
    row = await session.get(ConsoleAccountRow, username)
    if row is None:
        return None
    return Account(row.username, row.display_name, row.role, row.password_hash, row.disabled)


async def list_accounts(session: AsyncSession) -> list[Account]:
    rows = await session.scalars(select(ConsoleAccountRow).order_by(ConsoleAccountRow.username))
    return [Account(r.username, r.display_name, r.role, r.password_hash, r.disabled) for r in rows]


async def set_password_hash(session: AsyncSession, username: str, password_hash: str) -> None:
    """A rehash after sign-in, when the hasher's parameters changed."""
    row = await session.get(ConsoleAccountRow, username)
    if row is not None:
        row.password_hash = password_hash


async def open_session(
    session: AsyncSession,
    *,
    token_hash: str,
    reviewer: str,
    display_name: str,
    role: str,
    via: str,
    csrf: str,
    now: datetime,
    expires_at: datetime,
) -> None:
    # Sessions that ended are swept as new ones open: the table stays as small as the staff.
    await session.execute(delete(ConsoleSessionRow).where(ConsoleSessionRow.expires_at <= now))
    session.add(
        ConsoleSessionRow(
            token_hash=token_hash,
            reviewer=reviewer,
            display_name=display_name,
            role=role,
            via=via,
            csrf=csrf,
            created_at=now,
            expires_at=expires_at,
        )
    )


async def find_session(session: AsyncSession, token_hash: str, *, now: datetime) -> Session | None:
    row = await session.get(ConsoleSessionRow, token_hash)
    if row is None or row.expires_at <= now:
        return None
    return Session(row.reviewer, row.display_name, row.role, row.via, row.csrf, row.expires_at)


async def close_session(session: AsyncSession, token_hash: str) -> None:
    await session.execute(
        delete(ConsoleSessionRow).where(ConsoleSessionRow.token_hash == token_hash)
    )
