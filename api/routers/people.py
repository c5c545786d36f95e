"""The two web pages' API surface: the platform mints a buyer's link to their progress page;
admins manage the reviewer console's per-person accounts."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, Field, StringConstraints

from api.deps import Admin, Platform, ReadSessionDep, SessionDep, SettingsDep
from api.openapi import problem_responses
from api.pages.auth import hash_password
from api.pages.buyer import mint
from api.problems import Problem
from domain.model import Identifier, utcnow
from store import console as accounts
from store import refunds as refund_rows

router = APIRouter(tags=["people"])


class BuyerLinkRequest(BaseModel):
    # How long the link works; the setting BUYER_LINK_TTL_HOURS when omitted.
    ttl_hours: int | None = Field(default=None, ge=1, le=24 * 366)


class BuyerLink(BaseModel):
    url: str
    expires_at: datetime


@router.post(
    "/v1/refunds/{refund_id}/buyer-link",
    status_code=201,
    summary="A signed, expiring link to the buyer's progress page",
    description="The platform links to it from its own order page (no key needed: the "
    "link's HMAC signature is the buyer's access to that one refund, until it expires). "
    "The page shows the status in the buyer's words, the stages, when the money should "
    "arrive, and lets the buyer add evidence, cancel while allowed and appeal once.",
    responses=problem_responses(404),
)
async def buyer_link(
    refund_id: Identifier,
    session: ReadSessionDep,
    settings: SettingsDep,
    _: Platform,
    req: BuyerLinkRequest | None = None,
) -> BuyerLink:
    if await refund_rows.load_body(session, refund_id) is None:
        raise Problem(404, "not-found", "Unknown refund", f"no refund {refund_id}")
    hours = (req.ttl_hours if req else None) or settings.buyer_link_ttl_hours
    url, expires = mint(
        settings.buyer_link_secret,
        settings.public_base_url,
        refund_id,
        ttl=timedelta(hours=hours),
    )
    return BuyerLink(url=url, expires_at=expires)


ConsoleRole = Literal["reviewer", "supervisor", "admin"]
Password = Annotated[str, StringConstraints(min_length=10, max_length=256)]


class AccountRequest(BaseModel):
    # No NUL: PostgreSQL's text refuses it (schema fuzzing found the 500).
    display_name: Annotated[
        str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00]*$")
    ]
    role: ConsoleRole
    # Required for a new account; omitted: the password stays as it is.
    password: Password | None = None
    disabled: bool = False


class AccountView(BaseModel):
    username: str
    display_name: str
    role: str
    disabled: bool


class Accounts(BaseModel):
    accounts: list[AccountView]


@router.put(
    "/v1/admin/console-accounts/{username}",
    summary="Create or change a reviewer console account",
    description="Per-person sign-in for the reviewer console (`/console`): reviewers work the "
    "queue, supervisors also see load and SLA and reassign cases, admins too. Only an argon2 "
    "hash of the password is kept. `disabled: true` signs the person out everywhere.",
    responses={200: {"model": AccountView}, **problem_responses(422)},
    status_code=201,
)
async def put_account(
    username: Annotated[str, Path(pattern=r"^[A-Za-z0-9._@\-]{1,64}$")],
    req: AccountRequest,
    session: SessionDep,
    response: Response,
    _: Admin,
) -> AccountView:
    async with session.begin():
        try:
            created = await accounts.put_account(
                session,
                username=username,
                display_name=req.display_name,
                role=req.role,
                password_hash=hash_password(req.password) if req.password else None,
                disabled=req.disabled,
                now=utcnow(),
            )
        except ValueError:
            raise Problem(
                422,
                "validation",
                "Request is not valid",
                "password: required for a new account",
                errors=[{"field": "password", "message": "required for a new account"}],
            ) from None
    if not created:
        response.status_code = 200
    return AccountView(
        username=username, display_name=req.display_name, role=req.role, disabled=req.disabled
    )


@router.get("/v1/admin/console-accounts", summary="The reviewer console's accounts")
async def list_accounts(session: ReadSessionDep, _: Admin) -> Accounts:
    return Accounts(
        accounts=[
            AccountView(
                username=a.username, display_name=a.display_name, role=a.role, disabled=a.disabled
            )
            for a in await accounts.list_accounts(session)
        ]
    )
