"""Activity unit tests: each activity class run under Temporal's `ActivityEnvironment`
against a real database (this package's own, see tests/scratch.py) and fake peers."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import ActivityEnvironment

from tests.scratch import Scratch, scratch_database

Arg = TypeVar("Arg")
Result = TypeVar("Result")


@pytest.fixture(scope="package")
async def scratch(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Scratch]:
    async with scratch_database(tmp_path_factory.mktemp("activities")) as db:
        yield db


async def run_activity(
    activity: Callable[[Arg], Awaitable[Result]],
    arg: Arg,
    *,
    heartbeats: list[Any] | None = None,
    attempt: int = 1,
) -> Result:
    """Run one activity as a worker would: in an activity context, with its argument and its
    result passed through the data converter the worker uses (so a message that does not
    survive serialisation fails here, not in a workflow)."""
    converter = pydantic_data_converter.payload_converter
    env = ActivityEnvironment()
    env.payload_converter = converter
    env.info = dataclasses.replace(env.info, attempt=attempt)
    if heartbeats is not None:
        env.on_heartbeat = lambda *details: heartbeats.append(details)
    sent: Any = converter.from_payload(converter.to_payload(arg), type(arg))
    result = await env.run(activity, sent)
    if result is None:
        return result
    returned: Result = converter.from_payload(converter.to_payload(result), type(result))
    return returned
