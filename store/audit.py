"""Append-only, hash-chained audit log of decisions and money movements.

Each entry's hash covers its content and the previous entry's hash, so editing or
deleting any entry breaks every hash after it; `verify` finds the first break."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import event, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from store.models import AuditRow
from store.upsert import insert_ignore

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


_TAIL = "kami_audit_tail"  # the chain's tail as this transaction left it (session.info)


@event.listens_for(Session, "after_transaction_end")
def _forget_tail(session: Session, transaction: SessionTransaction) -> None:
    """Another transaction may append next: the tail is read afresh after this one."""
    if transaction.parent is None:
        session.info.pop(_TAIL, None)


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
    """Append once per `event_key` (a retried activity appends nothing new). Appends in one
    transaction chain onto each other without reading the tail back each time."""
    prev = session.info.get(_TAIL)
    if prev is None:
        if session.bind is not None and session.bind.dialect.name == "postgresql":
            # One appender at a time, or two could chain onto the same tail. (SQLite's
            # BEGIN IMMEDIATE already serialises writers.)
            await session.execute(text("SELECT pg_advisory_xact_lock(4242001)"))
        tail = await session.scalar(select(AuditRow.hash).order_by(AuditRow.seq.desc()).limit(1))
        prev = tail or GENESIS
    # Stored payloads come back through JSON: hash what will be read back.
    payload = json.loads(json.dumps(payload, default=str, ensure_ascii=False))
    row = {
        "event_key": event_key,
        "at": at,
        "actor": actor,
        "action": action,
        "subject": subject,
        "payload": payload,
        "prev_hash": prev,
        "hash": _digest(prev, event_key, at, actor, action, subject, payload),
    }
    # An event already appended (a retried activity) is skipped by its unique key.
    appended = await insert_ignore(session, AuditRow, [row]) == 1
    # The tail for the next append in this transaction (gone with the session).
    session.info[_TAIL] = row["hash"] if appended else prev
    return appended


@dataclass(frozen=True)
class Verification:
    entries: int
    first_bad_seq: int | None
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.first_bad_seq is None


async def verify(session: AsyncSession) -> Verification:
    """Walk the chain. Continuity is the hash chain's, not the sequence numbers': a database
    sequence skips numbers (a rolled-back append on PostgreSQL, an append skipped as already
    made), while an entry removed from the middle breaks the next one's `prev_hash`."""
    prev, count = GENESIS, 0
    for row in await session.scalars(select(AuditRow).order_by(AuditRow.seq)):
        count += 1
        if row.prev_hash != prev:
            return Verification(
                count, row.seq, "chain broken: an entry before it is missing or was altered"
            )
        if (
            _digest(prev, row.event_key, row.at, row.actor, row.action, row.subject, row.payload)
            != row.hash
        ):
            return Verification(count, row.seq, "entry content does not match its hash")
        prev = row.hash
    return Verification(count, None)
