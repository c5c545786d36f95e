"""Ctrl-C for launchers: the first one stops the stack in order, a second one hurries it.

`run_until_signalled(main)` runs `main()`; SIGINT/SIGTERM cancel it, so its `async with
start_stack(...)` block stops every service in reverse start order. A second signal does not
cancel again (that would abandon the orderly stop half way): it sets `hurry` on every running
stack, turning the remaining graceful waits into immediate SIGKILLs.
"""

from __future__ import annotations

import asyncio
import signal
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol, TypeVar

__all__ = [
    "reclaim_signals",
    "register",
    "run_once_until_signalled",
    "run_until_signalled",
    "unregister",
]


class _Hurriable(Protocol):
    hurry: asyncio.Event


_live: weakref.WeakSet[Any] = weakref.WeakSet()
# The handler of the `run_until_signalled` in progress, if any (one per process).
_handler: Callable[[], None] | None = None
_SIGNALS = (signal.SIGINT, signal.SIGTERM)
T = TypeVar("T")


def register(stack: _Hurriable) -> None:
    _live.add(stack)


def unregister(stack: _Hurriable) -> None:
    _live.discard(stack)


def _install(handler: Callable[[], None]) -> None:
    loop = asyncio.get_running_loop()
    for sig in _SIGNALS:
        loop.add_signal_handler(sig, handler)


def reclaim_signals() -> None:
    """Take SIGINT/SIGTERM back after an in-process service installed handlers of its own
    (the refund worker does, to shut down gracefully when it is the whole process)."""
    if _handler is not None:
        _install(_handler)


def run_until_signalled(
    main: Callable[[], Coroutine[Any, Any, int]],
    *,
    on_signal: Callable[[int], None] | None = None,
) -> int:
    """Run `main()` until it returns or SIGINT/SIGTERM arrives, then let it unwind.

    `on_signal(n)` is called with the count, e.g. to print "stopping...". Returns main's exit
    code, or 130 after a signal, like a shell.
    """

    async def runner() -> int:
        global _handler
        task = asyncio.ensure_future(main())
        signals_seen = 0

        def handle() -> None:
            nonlocal signals_seen
            signals_seen += 1
            if on_signal is not None:
                on_signal(signals_seen)
            if signals_seen == 1:
                task.cancel()
            else:
                for stack in list(_live):
                    stack.hurry.set()

        _handler = handle
        _install(handle)
        loop = asyncio.get_running_loop()
        try:
            return await task
        except asyncio.CancelledError:
            return 130
        finally:
            _handler = None
            for sig in _SIGNALS:
                loop.remove_signal_handler(sig)

    return asyncio.run(runner())


def run_once_until_signalled(
    job: Callable[[], Awaitable[T]], *, on_interrupt: Callable[[], None]
) -> T | None:
    """A one-off run over a throwaway stack (the bench, the chaos run): `job()`'s result, or
    None when SIGINT/SIGTERM stopped it (the caller exits 130). `on_interrupt` is called at the
    first signal, e.g. to say the stack is being stopped; its exceptions propagate."""
    results: list[T] = []

    async def main() -> int:
        results.append(await job())
        return 0

    def on_signal(count: int) -> None:
        if count == 1:
            on_interrupt()

    if run_until_signalled(main, on_signal=on_signal) == 130:
        return None
    return results[0]
