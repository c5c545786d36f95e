"""Signing in to the reviewer console: per-person accounts (argon2 password hashes) or an
existing reviewer/admin API key with the person's name; a platform key cannot sign in.

The session is a random token in an HttpOnly, SameSite=Strict cookie (Secure behind HTTPS);
the database keeps its SHA-256 and the session's CSRF token, which every form must send
back. Signing out deletes the session, so a copied cookie dies with it."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from api.edge import RateLimits
from api.pages.render import PageError, page
from api.pages.words import word
from api.problems import Problem
from config.settings import Settings
from domain.model import utcnow
from domain.types import Role
from store import console as accounts

router = APIRouter(prefix="/console", include_in_schema=False)

COOKIE = "kami_console"
LOGIN_COOKIE = "kami_console_login"  # the sign-in form's CSRF (double submit)
HASHER = PasswordHasher()
NAME = re.compile(r"^[A-Za-z0-9._:@\-]{1,64}$")
SUPERVISING = frozenset({"supervisor", "admin"})
# What each API key role signs in as; platform keys do not sign in.
KEY_ROLES = {Role.REVIEWER: "reviewer", Role.ADMIN: "admin"}


@dataclass(frozen=True)
class ConsoleUser:
    reviewer: str  # the identity the workflow records on every action
    display_name: str
    role: str  # reviewer | supervisor | admin
    csrf: str
    lang: str

    @property
    def supervises(self) -> bool:
        return self.role in SUPERVISING


def hash_password(password: str) -> str:
    return HASHER.hash(password)


def language(request: Request) -> str:
    return "en" if request.cookies.get("lang") == "en" else "zh"


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _secure(request: Request) -> bool:
    return _settings(request).public_base_url.startswith("https://")


class SignInNeeded(Exception):
    """No live session: a page redirects to sign-in, a form or a poll gets a clear page."""


async def current_user(request: Request) -> ConsoleUser:
    token = request.cookies.get(COOKIE)
    if not token or len(token) > 128:
        raise SignInNeeded
    async with request.app.state.reads() as session:
        found = await accounts.find_session(session, _token_hash(token), now=utcnow())
    if found is None:
        raise SignInNeeded
    return ConsoleUser(
        found.reviewer, found.display_name, found.role, found.csrf, language(request)
    )


User = Annotated[ConsoleUser, Depends(current_user)]


def check_csrf(user: ConsoleUser, sent: str | None) -> None:
    if not sent or not hmac.compare_digest(sent, user.csrf):
        raise PageError(403, "err.csrf", lang=user.lang, back="/console/queue")


def sign_in_needed_response(request: Request) -> Response:
    lang = language(request)
    # "Expired" only where there was a session: a first visit just gets the sign-in page.
    target = "/console/login?expired=1" if request.cookies.get(COOKIE) else "/console/login"
    if request.method == "GET" and "hx-request" not in request.headers:
        return RedirectResponse(target, status_code=303)
    headers = {"HX-Redirect": target}
    return page(
        "error.html",
        lang=lang,
        status=401,
        headers=headers,
        message=word("login.expired", lang),
        detail="",
        back="/console/login",
    )


def _login_page(request: Request, *, error: str = "", status: int = 200) -> Response:
    lang = language(request)
    form_token = secrets.token_urlsafe(24)
    notice = ""
    if request.query_params.get("expired"):
        notice = "login.expired"
    elif request.query_params.get("out"):
        notice = "login.signed_out"
    response = page(
        "login.html", lang=lang, status=status, csrf=form_token, error=error, notice=notice
    )
    response.set_cookie(
        LOGIN_COOKIE,
        form_token,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path="/console",
        max_age=3600,
    )
    return response


@router.get("/login")
async def login_form(request: Request) -> Response:
    return _login_page(request)


@router.post("/login")
async def login(
    request: Request,
    csrf: Annotated[str, Form(max_length=128)] = "",
    username: Annotated[str, Form(max_length=128)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    api_key: Annotated[str, Form(max_length=512)] = "",
    name: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not csrf or not expected or not hmac.compare_digest(csrf, expected):
        raise PageError(403, "err.csrf", lang=language(request), back="/console/login")
    limiter: RateLimits = request.app.state.sign_in_limits
    try:
        # Per client address and name: guessing one person's password, or keys, is slowed
        # down; colleagues behind one office address each keep their own allowance.
        client = request.client.host if request.client else "-"
        await limiter.hit(client, username.strip() or "api-key")
    except Problem:
        return _login_page(request, error="login.too_many", status=429)
    if api_key:
        return await _key_sign_in(request, api_key.strip(), name.strip())
    async with request.app.state.reads() as session:
        account = await accounts.get_account(session, username.strip())
    if account is None or account.disabled or not _verified(account.password_hash, password):
        return _login_page(request, error="login.failed", status=401)
    if HASHER.check_needs_rehash(account.password_hash):
        async with request.app.state.sessions.begin() as session:
            await accounts.set_password_hash(session, account.username, hash_password(password))
    return await _open(request, account.username, account.display_name, account.role, "password")


def _verified(password_hash: str, password: str) -> bool:
    try:
        return HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def _key_sign_in(request: Request, key: str, name: str) -> Response:
    role = request.app.state.api_keys.get(key)
    if role not in KEY_ROLES:
        return _login_page(request, error="login.key_failed", status=401)
    if not NAME.match(name):
        return _login_page(request, error="login.name_bad", status=400)
    async with request.app.state.reads() as session:
        if await accounts.get_account(session, name) is not None:
            return _login_page(request, error="login.name_taken", status=409)
    return await _open(request, name, name, KEY_ROLES[role], "api_key")


async def _open(request: Request, reviewer: str, display: str, role: str, via: str) -> Response:
    token = secrets.token_urlsafe(32)
    now = utcnow()
    hours = _settings(request).console_session_hours
    async with request.app.state.sessions.begin() as session:
        await accounts.open_session(
            session,
            token_hash=_token_hash(token),
            reviewer=reviewer,
            display_name=display,
            role=role,
            via=via,
            csrf=secrets.token_urlsafe(32),
            now=now,
            expires_at=now + timedelta(hours=hours),
        )
    response = RedirectResponse("/console/queue", status_code=303)
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path="/console",
        max_age=int(hours * 3600),
    )
    response.delete_cookie(LOGIN_COOKIE, path="/console")
    return response


@router.post("/logout")
async def logout(
    request: Request, user: User, csrf: Annotated[str, Form(max_length=128)] = ""
) -> Response:
    check_csrf(user, csrf)
    token = request.cookies.get(COOKIE, "")
    async with request.app.state.sessions.begin() as session:
        await accounts.close_session(session, _token_hash(token))
    response = RedirectResponse("/console/login?out=1", status_code=303)
    response.delete_cookie(COOKIE, path="/console")
    return response


@router.get("/lang/{lang}")
async def switch_language(lang: str, next: str = "/console") -> Response:
    """The console's language, kept in a cookie (Chinese by default); back to where it was
    chosen (a path of the console's own, never another site)."""
    target = next if next.startswith("/console") and "//" not in next else "/console"
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        "lang", "en" if lang == "en" else "zh", samesite="lax", path="/", max_age=365 * 86400
    )
    return response
