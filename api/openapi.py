"""The OpenAPI document names every error a route can answer, as problem+json.

FastAPI documents a route's success and a 422 of its own shape; our errors are RFC 9457
problems, and most of them follow from what a route is: a keyed route can be 401, a route
some roles may not call 403, a route with a body 400 (malformed JSON) and 413, a route with
parameters or a body 422, a keyed write 429. `document_errors` adds those from each route's
own declaration; what only the handler knows (404, 409, 503, a buyer's 403) the route
declares with `problem_responses(...)`. Schema fuzzing (tests/integration/test_schema_fuzz.py)
holds the document to the API's answers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field

from api.problems import PROBLEM_JSON
from domain.types import Role

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
UNKEYED_PREFIXES = ("/v1/gateways/",)

DESCRIPTIONS = {
    400: "Malformed JSON, or a required header missing or malformed",
    401: "Missing or unknown API key (checked before the body is read)",
    403: "This key's role may not do this, or the buyer is not the order's or refund's",
    404: "Unknown resource",
    409: "Conflicts with the resource's state",
    413: "Request body over the configured cap",
    422: "A field, parameter or header is not valid; `errors` names each",
    429: "Rate or open-stream limit reached; see Retry-After",
    503: "A dependency is unavailable; retry (see the problem's detail)",
}


class FieldProblem(BaseModel):
    field: str = Field(description="e.g. `items[0].card_keys[0].delivered_at`")
    message: str
    type: str | None = None


class ProblemDetails(BaseModel):
    """RFC 9457 problem details. Some problems carry more members, e.g.
    `existing_refund_id`, `status_now`, `order_id`, `refund_id`, `limit`."""

    model_config = ConfigDict(extra="allow", title="Problem")

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldProblem] | None = None


def _problem_content() -> dict[str, Any]:
    return {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route decorator: these statuses answer problem+json."""
    return {s: {"description": DESCRIPTIONS[s], "content": _problem_content()} for s in statuses}


def _calls(dependant: Dependant) -> Iterator[Any]:
    for dep in dependant.dependencies:
        yield dep.call
        yield from _calls(dep)


def _statuses(route: APIRoute) -> set[int]:
    keyed = route.path.startswith("/v1/") and not route.path.startswith(UNKEYED_PREFIXES)
    statuses: set[int] = set()
    if keyed:
        statuses.add(401)
        allowed = [getattr(c, "allowed_roles", None) for c in _calls(route.dependant)]
        if any(roles is not None and set(Role) - roles for roles in allowed):
            statuses.add(403)
        if set(route.methods or ()) & WRITES:
            statuses.add(429)
    if route.body_field is not None:
        statuses |= {400, 413, 422}
    params = route.dependant
    if params.path_params or params.query_params or params.header_params:
        statuses.add(422)
    return statuses


def document_router(router: APIRouter) -> None:
    """Declare the problem responses that follow from each route's own declaration.
    Call before the router is included (idempotent)."""
    for route in router.routes:
        if isinstance(route, APIRoute) and route.include_in_schema:
            for status, response in problem_responses(*sorted(_statuses(route))).items():
                route.responses.setdefault(status, response)


def install_problem_schema(app: FastAPI) -> None:
    """The OpenAPI document gets the Problem schema the problem responses refer to."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            problem = ProblemDetails.model_json_schema(ref_template="#/components/schemas/{model}")
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(problem.pop("$defs", {}))
            components["Problem"] = problem
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
