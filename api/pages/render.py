"""Server-rendered pages: one Jinja2 environment with autoescaping (everything a buyer or a
reviewer typed is shown as text), the formatting helpers the templates share, security
headers, and error pages instead of stack traces or problem+json for people's browsers."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.pages.words import word

log = logging.getLogger("api.pages")
HERE = Path(__file__).parent
# Reviewers and buyers read times in China's time; the data stays UTC.
LOCAL = ZoneInfo("Asia/Shanghai")
PAGE_PREFIXES = ("/console", "/r/")

ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=jinja2.select_autoescape(["html"], default=True),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

# The pages load nothing from elsewhere but evidence images; no inline script at all.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' https: http: data:; "
    "script-src 'self'; style-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # A buyer's link carries its token: never send it to an evidence image's host.
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def money(fen: int | None) -> str:
    if fen is None:
        return "—"
    return f"¥{fen // 100:,}.{fen % 100:02d}"


def amounts(by_currency: dict[str, int] | None) -> str:
    """Money per currency (an incident can span several): yuan for CNY, minor units else."""
    if not by_currency:
        return money(0)
    return " + ".join(
        money(a) if c == "CNY" else f"{a:,} {c}" for c, a in sorted(by_currency.items())
    )


def local_time(at: datetime | None, fmt: str = "%m-%d %H:%M") -> str:
    if at is None:
        return "—"
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(LOCAL).strftime(fmt)


def iso(at: datetime | None) -> str:
    if at is None:
        return ""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat()


def time_left(deadline: datetime | None, now: datetime, lang: str) -> tuple[str, str]:
    """The countdown's words and colour: amber under 4 h, red under 1 h, overdue after
    (the page's script keeps it ticking)."""
    if deadline is None:
        return "—", ""
    seconds = int((deadline - now).total_seconds())
    if seconds <= 0:
        late = -seconds // 60
        hours, minutes = divmod(late, 60)
        text = f"{hours}h{minutes:02d}m" if hours else f"{minutes}m"
        return (f"超时 {text}" if lang == "zh" else f"{text} over"), "overdue"
    hours, rest = divmod(seconds, 3600)
    minutes = rest // 60
    text = f"{hours}h{minutes:02d}m" if hours else f"{minutes}m"
    return text, "red" if seconds < 3600 else "amber" if seconds < 4 * 3600 else "ok"


ENV.filters.update(money=money, amounts=amounts, local_time=local_time, iso=iso)
ENV.globals.update(time_left=time_left)


def page(
    template: str,
    *,
    lang: str,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    def t(key: str, **values: object) -> str:
        return word(key, lang, **values)

    context.setdefault("here", "/console")
    context.setdefault("nav", "")
    html = ENV.get_template(template).render(t=t, lang=lang, **context)
    return HTMLResponse(html, status_code=status, headers={**SECURITY_HEADERS, **(headers or {})})


class PageError(Exception):
    """A refusal a person sees as a page: a word key, an optional detail, the status."""

    def __init__(
        self, status: int, key: str, detail: str = "", *, lang: str = "zh", back: str = ""
    ) -> None:
        super().__init__(key)
        self.status, self.key, self.detail, self.lang, self.back = status, key, detail, lang, back


def error_page(err: PageError) -> HTMLResponse:
    return page(
        "error.html",
        lang=err.lang,
        status=err.status,
        message=word(err.key, err.lang),
        detail=err.detail,
        back=err.back,
    )


def is_page(request: Request) -> bool:
    return request.url.path.startswith(PAGE_PREFIXES)


def install_error_pages(app: FastAPI) -> None:
    """People's pages answer errors with a page; the API keeps its problem+json."""

    @app.exception_handler(PageError)
    async def _page_error(_: Request, exc: PageError) -> Response:
        return error_page(exc)

    for kind in (StarletteHTTPException, RequestValidationError, Exception):
        api_handler = app.exception_handlers.get(kind)
        if api_handler is None:
            continue

        async def handler(request: Request, exc: Exception, api_handler: Any = api_handler) -> Any:
            if not is_page(request):
                return await api_handler(request, exc)
            lang = "en" if request.cookies.get("lang") == "en" else "zh"
            if isinstance(exc, StarletteHTTPException):
                key = "err.not_found" if exc.status_code == 404 else "err.title"
                return error_page(PageError(exc.status_code, key, lang=lang))
            if isinstance(exc, RequestValidationError):
                fields = ", ".join(str(e.get("loc", ["?"])[-1]) for e in exc.errors()[:3])
                return error_page(PageError(400, "err.title", fields, lang=lang))
            log.exception("page error", exc_info=exc)
            return error_page(PageError(500, "err.internal", lang=lang))

        app.add_exception_handler(kind, handler)
