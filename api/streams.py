"""Events streams (`GET /v1/refunds/{id}/events`) that cost nothing while they wait.

One `RefundWatch` per API process looks for changes on behalf of every open stream: a single
short read per interval says which watched refunds have new timeline entries or a new status,
and only their streams load anything, each with a short session of its own. An idle stream
holds no database session, so a crowd of open streams cannot drain the pool that ordinary
calls need (issue 8: about 25 streams used to stall the whole API for 30 s).

Each key may hold a limited number of streams open (`StreamSlots`), and a stream ends after a
maximum lifetime; an SSE client reconnects by itself with `Last-Event-ID` and carries on where
it left off.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

from sqlalchemy import func, select

from api.problems import Problem
from domain.refund import RefundBody
from store import refunds as refund_rows
from store.db import SessionFactory
from store.models import RefundRow, TimelineRow

log = logging.getLogger(__name__)

KEEP_ALIVE = b": keep-alive\n\n"
# One event of the stream, for the OpenAPI document (3.2's `itemSchema`).
EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"type": "string", "enum": ["timeline", "end"]},
        "id": {
            "type": "string",
            "pattern": "^[1-9][0-9]*$",
            "description": "a timeline entry's position, from 1; send it back as Last-Event-ID",
        },
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "description": "timeline: the entry and the refund's status now; end: the status",
        },
    },
}
# Refunds looked up per query by the watcher (SQL parameter lists stay small).
WATCH_CHUNK = 500

Mark = tuple[Any, ...]


class RefundWatch:
    """Wakes the streams of refunds that changed, from one poll for all of them."""

    def __init__(self, reads: SessionFactory, *, interval: float) -> None:
        self._reads = reads
        self._interval = interval
        self._listeners: dict[str, set[asyncio.Event]] = {}
        # What the last poll saw per watched refund; None: not looked at since watched.
        self._marks: dict[str, Mark | None] = {}

    @property
    def watched(self) -> int:
        return len(self._listeners)

    @contextlib.contextmanager
    def listen(self, refund_id: str) -> Iterator[asyncio.Event]:
        """An event set whenever the refund may have changed. The first poll after a refund
        starts being watched always sets it, so nothing between the listener's own read and
        that poll is missed."""
        changed = asyncio.Event()
        listeners = self._listeners.setdefault(refund_id, set())
        if not listeners:
            self._marks[refund_id] = None
        listeners.add(changed)
        try:
            yield changed
        finally:
            listeners.discard(changed)
            if not listeners:
                self._listeners.pop(refund_id, None)
                self._marks.pop(refund_id, None)

    async def run(self) -> None:
        """Poll until cancelled (the app's lifespan owns this task)."""
        while True:
            await asyncio.sleep(self._interval)
            if not self._listeners:
                continue
            try:
                await self.poll()
            except Exception:
                # The database is away: streams keep waiting, the next poll tries again.
                log.warning("events watcher could not poll", exc_info=True)

    async def poll(self) -> None:
        ids = list(self._listeners)
        entries = (
            select(func.count())
            .select_from(TimelineRow)
            .where(TimelineRow.refund_id == RefundRow.refund_id)
            .scalar_subquery()
        )
        seen: dict[str, Mark] = {}
        async with self._reads() as session:
            for start in range(0, len(ids), WATCH_CHUNK):
                chunk = ids[start : start + WATCH_CHUNK]
                rows = await session.execute(
                    select(RefundRow.refund_id, RefundRow.status, entries).where(
                        RefundRow.refund_id.in_(chunk)
                    )
                )
                seen.update((row[0], (row[1], row[2])) for row in rows)
        for refund_id in ids:
            if refund_id not in self._marks:
                continue  # its last stream ended during the poll
            mark = seen.get(refund_id)
            if self._marks[refund_id] != mark:
                self._marks[refund_id] = mark
                for changed in self._listeners.get(refund_id, ()):
                    changed.set()


class StreamSlot:
    """One open stream of one key; releasing twice is harmless."""

    def __init__(self, slots: StreamSlots, key_id: str) -> None:
        self._slots, self._key_id, self._held = slots, key_id, True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._slots.give_back(self._key_id)


class StreamSlots:
    """Counts open streams per API key; past the limit a key gets 429 until one closes."""

    def __init__(self, per_key: int) -> None:
        self.per_key = per_key
        self._open: Counter[str] = Counter()

    def open(self, key_id: str) -> int:
        return self._open[key_id]

    def take(self, key_id: str) -> StreamSlot:
        if self._open[key_id] >= self.per_key:
            raise Problem(
                429,
                "too-many-streams",
                "Too many open event streams for this key",
                f"at most {self.per_key} open streams per key; close one or retry later",
                headers={"Retry-After": "5"},
                limit=self.per_key,
            )
        self._open[key_id] += 1
        return StreamSlot(self, key_id)

    def give_back(self, key_id: str) -> None:
        self._open[key_id] -= 1
        if self._open[key_id] <= 0:
            del self._open[key_id]


def timeline_event(number: int, entry: Any, status: str) -> bytes:
    data = json.dumps({**entry.model_dump(mode="json"), "status": status}, ensure_ascii=False)
    return f"id: {number}\nevent: timeline\ndata: {data}\n\n".encode()


def end_event(status: str) -> bytes:
    return f"event: end\ndata: {json.dumps({'status': status})}\n\n".encode()


async def _load(reads: SessionFactory, refund_id: str) -> RefundBody | None:
    async with reads() as session:
        return await refund_rows.load_body(session, refund_id)


async def refund_events(
    refund_id: str,
    *,
    reads: SessionFactory,
    watch: RefundWatch,
    slot: StreamSlot,
    after: int = 0,
    lifetime: float,
    keep_alive: float,
) -> AsyncIterator[bytes]:
    """Timeline entries numbered from 1 (the SSE `id`), those after `after` (Last-Event-ID),
    as they happen; `end` once the refund is terminal. Ends quietly after `lifetime` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + lifetime
    sent = after
    try:
        with watch.listen(refund_id) as changed:
            while True:
                changed.clear()
                body = await _load(reads, refund_id)
                if body is None:
                    return
                for number in range(sent + 1, len(body.timeline) + 1):
                    yield timeline_event(number, body.timeline[number - 1], body.status.value)
                sent = max(sent, len(body.timeline))
                if body.status.is_terminal:
                    yield end_event(body.status.value)
                    return
                while not changed.is_set():
                    left = deadline - loop.time()
                    if left <= 0:
                        return
                    try:
                        await asyncio.wait_for(changed.wait(), timeout=min(keep_alive, left))
                    except TimeoutError:
                        if loop.time() < deadline:
                            yield KEEP_ALIVE
    finally:
        slot.release()
