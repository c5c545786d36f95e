"""Test-only fault injection: named points in the money path where a worker can be made to
die as if SIGKILLed, so the crash tests (tests/crash/) can prove a refund survives a crash
at every step boundary.

Production never sets `KAMI_CRASHPOINTS`: then the set of armed names is empty and
`crashpoint()` is one membership test on an empty frozenset.

- `KAMI_CRASHPOINTS`: comma-separated names of the points that may fire, e.g.
  `payout.before_gateway,payout.after_gateway`.
- `KAMI_CRASHPOINT_DIR`: where the markers live (default: the current directory). A point
  fires only while `<dir>/<name>.hit` does not exist, and creates it as it fires, so the
  restarted worker passes the same point and finishes the refund. Deleting the marker arms
  the point again (that is how a test picks the one point it exercises).

Both are read once, at import: a worker process is either built to crash or it is not.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ARMED", "CRASH_EXIT_CODE", "crashpoint", "marker"]

# What a shell reports for a SIGKILLed process (128 + 9); os._exit skips every cleanup too.
CRASH_EXIT_CODE = 137

ARMED: frozenset[str] = frozenset(
    name.strip() for name in os.environ.get("KAMI_CRASHPOINTS", "").split(",") if name.strip()
)
_DIR = Path(os.environ.get("KAMI_CRASHPOINT_DIR") or ".")


def marker(name: str, directory: Path | None = None) -> Path:
    """The file whose presence means `name` already fired (or is disarmed)."""
    return (directory or _DIR) / f"{name}.hit"


def crashpoint(name: str) -> None:
    """Die here, hard, the first time an armed `name` is reached; otherwise do nothing."""
    if name not in ARMED:
        return
    path = marker(name)
    try:
        # O_EXCL: of two activities racing to the same point, exactly one dies for it.
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return
    os.write(fd, f"{os.getpid()}\n".encode())
    os.close(fd)
    os._exit(CRASH_EXIT_CODE)
