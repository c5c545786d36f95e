"""The two web pages people use, served by the API process: the reviewer console
(`/console`) and the buyer's progress page (`/r/{refund_id}?t=...`). Server-rendered Jinja2
templates with htmx (vendored in `static/`, version 2.0.11, BSD-0) and a few lines of our
own script; no build step."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from api.edge import RateLimits
from api.pages import auth, buyer, buyer_notifications, case, console, incidents
from api.pages.render import install_error_pages
from config.settings import Settings

STATIC = Path(__file__).parent / "static"

__all__ = ["install"]


def install(app: FastAPI, settings: Settings) -> None:
    app.state.sign_in_limits = RateLimits("sign-in", settings.console_sign_in_limit)
    for module in (auth, console, case, incidents, buyer, buyer_notifications):
        app.include_router(module.router)
    app.mount("/assets", StaticFiles(directory=STATIC), name="assets")

    @app.exception_handler(auth.SignInNeeded)
    async def _sign_in(request: Request, _: auth.SignInNeeded) -> Response:
        return auth.sign_in_needed_response(request)

    install_error_pages(app)
