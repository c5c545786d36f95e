"""A small fuzz of the API's bodies over real HTTP: arbitrary JSON and valid refund and order
bodies with one field replaced or dropped never get a 500, and every 4xx is a problem+json;
a refused order is never stored."""

from __future__ import annotations

import copy
import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.bad_input import PROBLEM_JSON, assert_no_order, idem, raw_post, refund_body
from tests.system import System, card_key_order, unique

pytestmark = pytest.mark.integration


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.sampled_from(["I-1", "invalid_key", "paid", "card_key", "2026-11-20T08:00:00Z", ""])
)


json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)  # fmt: skip


def mutations(valid: dict[str, Any]) -> st.SearchStrategy[Any]:
    """A valid body with one field (top level or one level down) replaced or dropped."""

    @st.composite
    def mutate(draw: st.DrawFn) -> Any:
        body = copy.deepcopy(valid)
        target: Any = body
        key = draw(st.sampled_from(sorted(body)))
        nested = target[key]
        if (
            isinstance(nested, list)
            and nested
            and isinstance(nested[0], dict)
            and draw(st.booleans())
        ):
            target, key = nested[0], draw(st.sampled_from(sorted(nested[0])))
        if draw(st.booleans()):
            del target[key]
        else:
            target[key] = draw(json_values)
        return body

    return mutate()


FUZZ = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def assert_sane(r: httpx.Response) -> None:
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        assert r.headers["content-type"].startswith(PROBLEM_JSON), r.headers
        assert r.json()["status"] == r.status_code


@pytest.fixture(scope="module")
async def fuzz_order(system: System) -> dict[str, Any]:
    return await system.record(card_key_order())


@FUZZ
@given(body=st.one_of(json_values, mutations(refund_body(card_key_order(), reason_text="x"))))
async def test_fuzz_refunds(system: System, fuzz_order: dict[str, Any], body: Any) -> None:
    if isinstance(body, dict) and body.get("order_id") not in (None, ""):
        body = {**body, "order_id": fuzz_order["order_id"]}
        if isinstance(body.get("buyer_id"), str):
            body["buyer_id"] = fuzz_order["buyer_id"]
    raw = json.dumps(body).encode()
    assert_sane(await raw_post(system, "/v1/refunds", raw, **idem()))


@FUZZ
@given(body=st.one_of(json_values, mutations(card_key_order())))
async def test_fuzz_orders(system: System, body: Any) -> None:
    if isinstance(body, dict) and isinstance(body.get("order_id"), str):
        body = {**body, "order_id": unique("O")}  # each example its own order
    r = await raw_post(system, "/v1/orders", json.dumps(body).encode())
    assert_sane(r)
    if r.status_code >= 400 and isinstance(body, dict) and isinstance(body.get("order_id"), str):
        await assert_no_order(system, body["order_id"])
