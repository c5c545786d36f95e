"""RFC 9457 problem details for every error the API returns. Bad input is a 4xx naming
the field; nothing here ever answers 500 for something the caller sent."""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("api")


class Problem(Exception):
    """A domain error that knows its HTTP status."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str = "",
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status, self.slug, self.title, self.detail = status, slug, title, detail
        self.errors, self.headers, self.extra = errors, headers, extra


def field_error(field: str, message: str, status: int = 422, detail: str = "") -> Problem:
    return Problem(
        status,
        "validation",
        "Request is not valid",
        detail or f"{field}: {message}",
        errors=[{"field": field, "message": message}],
    )


def temporal_unavailable(message: str) -> Problem:
    """Temporal did not answer an action: nothing was done, the caller may repeat it."""
    return Problem(
        503, "temporal-unavailable", "Try again shortly", message, headers={"Retry-After": "5"}
    )


def unauthorized() -> Problem:
    return Problem(
        401,
        "unauthorized",
        "Missing or unknown API key",
        "send Authorization: Bearer <key>",
        headers={"WWW-Authenticate": "Bearer"},
    )


def too_large(limit: int) -> Problem:
    return Problem(413, "too-large", "Request body is too large", f"at most {limit} bytes")


def problem_response(p: Problem) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"/problems/{p.slug}",
        "title": p.title,
        "status": p.status,
        "detail": p.detail or p.title,
    }
    if p.errors is not None:
        body["errors"] = p.errors
    body.update(p.extra)
    return JSONResponse(body, status_code=p.status, media_type=PROBLEM_JSON, headers=p.headers)


def _field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    """('body', 'items', 0, 'quantity') -> 'items[0].quantity'; headers and queries keep
    their own name."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:] or [loc[0]]
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "body"


# Cross-field checks (model validators) name their field first: "items: ...".
_FIELD_PREFIX = re.compile(
    r"^(?:Value error, )?([a-z_][a-z0-9_]*(?:\[\d+\])?(?:\.[a-z_][a-z0-9_]*)*): (.+)$", re.S
)


def _error(e: Any) -> dict[str, Any]:
    field = _field_path(e.get("loc", ()))
    message = str(e.get("msg", "invalid"))
    matched = _FIELD_PREFIX.match(message) if e.get("type") == "value_error" else None
    if matched:
        # The validator ran on the enclosing object; point at the field it names.
        inner = matched.group(1)
        field = inner if field == "body" else f"{field}.{inner}"
        message = matched.group(2)
    return {"field": field, "message": message, "type": e.get("type")}


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(_: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [_error(e) for e in exc.errors()]
        if any(e["type"] == "json_invalid" for e in errors):
            # The key was checked before the body was read (api.edge): a 401 came first.
            return problem_response(
                Problem(
                    400,
                    "malformed-json",
                    "Body is not valid JSON",
                    errors=[{"field": "body", "message": "malformed JSON"}],
                )
            )
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        return problem_response(
            Problem(422, "validation", "Request is not valid", detail, errors=errors)
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 413:  # a chunked body grew past the cap while it streamed in
            return problem_response(too_large(request.app.state.settings.max_body_bytes))
        slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        return problem_response(Problem(exc.status_code, slug, str(exc.detail), str(exc.detail)))

    @app.exception_handler(PoolTimeout)
    async def _busy(_: Request, exc: PoolTimeout) -> JSONResponse:
        log.warning("no database connection within the pool timeout: %s", exc)
        return problem_response(
            Problem(
                503,
                "busy",
                "The service is busy",
                "no database connection was free in time; retry shortly",
                headers={"Retry-After": "1"},
            )
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return problem_response(Problem(500, "internal", "Internal error", "the error was logged"))
