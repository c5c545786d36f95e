"""Running a `refundctl` command the way an operator does: a subprocess from the project's
root, its output kept (and printed, so pytest shows it when the test fails)."""

from __future__ import annotations

import asyncio
import sys

from refundctl.devserver import PROJECT_ROOT


async def run_refundctl(*args: str, timeout_seconds: float) -> tuple[int, str]:
    """`refundctl *args` to its end: the exit code and the output (stdout and stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "refundctl.cli",
        *args,
        cwd=PROJECT_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(timeout_seconds):
            output, _ = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    text = output.decode(errors="replace")
    print(text)
    assert process.returncode is not None
    return process.returncode, text
