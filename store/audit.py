"""Append-only, hash-chained audit log of decisions and money movements.

Each entry's hash covers its content and the previous entry's hash, so editing or
deleting any entry breaks every hash after it; `verify` finds the first break."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from store.models import AuditRow

GENESIS = "0" * 64


def _digest(
    prev_hash: str,
    event_key: str,
    at: datetime,
    actor: str,
    action: str,
    subject: str,
    payload: dict[str, Any],
) -> str:
    canonical = json.dumps(
        {
            "prev": prev_hash,
            "key": event_key,
            "at": at.isoformat(),
            "actor": actor,
            "action": action,
            "subject": subject,
            "payload": payload,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


async def append(
    session: AsyncSession,
    *,
    event_key: str,
    actor: str,
    action: str,
    subject: str,
    payload: dict[str, Any],
    at: datetime,
) -> bool:
    """Append once per `event_key` (a retried activity appends nothing new)."""
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        # One appender at a time, or two could chain onto the same tail. (SQLite's
        # BEGIN IMMEDIATE already serialises writers.)
        await session.execute(text("SELECT pg_advisory_xact_lock(4242001)"))
    if await session.scalar(select(AuditRow.seq).where(AuditRow.event_key == event_key)):
        return False
    tail = await session.scalar(select(AuditRow.hash).order_by(AuditRow.seq.desc()).limit(1))
    prev = tail or GENESIS
    # Stored payloads come back through JSON: hash what will be read back.
    payload = json.loads(json.dumps(payload, default=str, ensure_ascii=False))
    session.add(
        AuditRow(
            event_key=event_key,
            at=at,
            actor=actor,
            action=action,
            subject=subject,
            payload=payload,
            prev_hash=prev,
            hash=_digest(prev, event_key, at, actor, action, subject, payload),
        )
    )
    await session.flush()
    return True


@dataclass(frozen=True)
class Verification:
    entries: int
    first_bad_seq: int | None
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.first_bad_seq is None


async def verify(session: AsyncSession) -> Verification:
    prev, count, expected_seq = GENESIS, 0, None
    for row in await session.scalars(select(AuditRow).order_by(AuditRow.seq)):
        count += 1
        if expected_seq is not None and row.seq != expected_seq:
            return Verification(count, expected_seq, f"entry {expected_seq} is missing")
        if row.prev_hash != prev:
            return Verification(count, row.seq, "chain broken: prev_hash does not match")
        if (
            _digest(prev, row.event_key, row.at, row.actor, row.action, row.subject, row.payload)
            != row.hash
        ):
            return Verification(count, row.seq, "entry content does not match its hash")
        prev, expected_seq = row.hash, row.seq + 1
    return Verification(count, None)
