"""Why a process cannot start, said in one line.

A wrong API key, an expired certificate, an unreachable Temporal cluster or a refused
setting ends `refundctl <command>` with one clear line on stderr and exit code 2, not a
stack trace (`refundctl.cli`)."""

from __future__ import annotations

EXIT_CANNOT_START = 2


class CannotStart(RuntimeError):
    """The process cannot run as configured; the message is the one line to print."""


def cannot_start(err: BaseException) -> str | None:
    """The one line for a startup failure, or None for anything else (a bug: let it raise)."""
    if isinstance(err, CannotStart):
        return str(err)
    from pydantic import ValidationError

    if isinstance(err, ValidationError):
        reasons = "; ".join(
            ".".join(str(part).upper() for part in e.get("loc", ()))
            + (": " if e.get("loc") else "")
            + str(e.get("msg", "")).removeprefix("Value error, ")
            for e in err.errors()
        )
        return f"settings refused: {reasons}"
    return None
