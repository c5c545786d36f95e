"""The OpenAPI document names every problem+json error a route can answer (issue 8: it
listed only successes and FastAPI's own 422). Schema fuzzing checks the document against
the live API (tests/integration/test_schema_fuzz.py); this checks its shape without one."""

from __future__ import annotations

from typing import Any

import pytest

from api.app import create_app
from config.settings import Settings

PROBLEM = {"schema": {"$ref": "#/components/schemas/Problem"}}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return create_app(Settings(environment="test")).openapi()


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m.upper(), p, op) for p, ops in document["paths"].items() for m, op in ops.items()]


def test_errors_are_problems_with_one_schema(document: dict[str, Any]) -> None:
    assert document["components"]["schemas"]["Problem"]["required"] == [
        "type",
        "title",
        "status",
        "detail",
    ]
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for method, path, op in operations(document):
        for status, response in op["responses"].items():
            if status.startswith("4") and not path.startswith("/v1/gateways/"):
                assert response["content"] == {"application/problem+json": PROBLEM}, (
                    method,
                    path,
                    status,
                )


def test_each_route_documents_what_follows_from_it(document: dict[str, Any]) -> None:
    for method, path, op in operations(document):
        statuses = set(op["responses"])
        where = (method, path, sorted(statuses))
        if not path.startswith("/v1/gateways/"):
            assert "401" in statuses, where
            if method != "GET":
                assert "429" in statuses, where
        if "requestBody" in op:
            assert {"400", "413", "422"} <= statuses, where
        if op.get("parameters"):
            assert "422" in statuses, where


@pytest.mark.parametrize(
    ("method", "path", "statuses"),
    [
        ("POST", "/v1/orders", {"200", "201", "403", "409"}),
        ("POST", "/v1/refunds", {"200", "202", "403", "404", "409", "503"}),
        ("GET", "/v1/refunds/{refund_id}/events", {"200", "404", "429"}),
        ("POST", "/v1/refunds/{refund_id}/cancel", {"403", "404", "409"}),
        ("POST", "/v1/refunds/{refund_id}/approve", {"403", "404", "409"}),
        ("GET", "/v1/notifications", {"403"}),
        ("GET", "/v1/admin/reports", {"403"}),
        ("DELETE", "/v1/admin/blacklist/{kind}/{value}", {"404"}),
    ],
)
def test_route_specific_statuses(
    document: dict[str, Any], method: str, path: str, statuses: set[str]
) -> None:
    assert statuses <= set(document["paths"][path][method.lower()]["responses"])


def test_role_free_routes_do_not_claim_403(document: dict[str, Any]) -> None:
    # Every role may list refunds: a 403 there would be a promise the API never keeps.
    assert "403" not in document["paths"]["/v1/refunds"]["get"]["responses"]
