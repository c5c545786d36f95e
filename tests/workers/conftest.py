"""The worker's own components (the sweeper, the webhook dispatcher), each against a real
database of this package's own and fakes of what they talk to."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.scratch import Scratch, scratch_database


@pytest.fixture(scope="package")
async def scratch(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Scratch]:
    async with scratch_database(tmp_path_factory.mktemp("workers")) as db:
        yield db
