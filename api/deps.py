"""Request dependencies: the database session, the Temporal client, the caller's role."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client

from api.edge import key_id
from api.problems import Problem, unauthorized
from api.streams import RefundWatch, StreamSlots
from config.settings import Settings
from domain.types import Role
from store.db import SessionFactory


@dataclass(frozen=True)
class Caller:
    key_id: str  # a stable, non-secret name for the key: scopes idempotency keys
    role: Role


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    sessions: SessionFactory = request.app.state.sessions
    async with sessions() as session:
        yield session


async def _read_session(request: Request) -> AsyncIterator[AsyncSession]:
    reads: SessionFactory = request.app.state.reads
    async with reads() as session:
        yield session


def _sessions(request: Request) -> SessionFactory:
    reads: SessionFactory = request.app.state.reads
    return reads


def _temporal(request: Request) -> Client:
    client: Client = request.app.state.temporal
    return client


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _watch(request: Request) -> RefundWatch:
    watch: RefundWatch = request.app.state.watch
    return watch


def _stream_slots(request: Request) -> StreamSlots:
    slots: StreamSlots = request.app.state.stream_slots
    return slots


# Endpoints that write take SessionDep; the rest read through snapshots that never wait for
# a writer (on SQLite, writers hold the lock from BEGIN).
SessionDep = Annotated[AsyncSession, Depends(_session)]
ReadSessionDep = Annotated[AsyncSession, Depends(_read_session)]
ReadSessionsDep = Annotated[SessionFactory, Depends(_sessions)]
TemporalDep = Annotated[Client, Depends(_temporal)]
SettingsDep = Annotated[Settings, Depends(_settings)]
WatchDep = Annotated[RefundWatch, Depends(_watch)]
StreamSlotsDep = Annotated[StreamSlots, Depends(_stream_slots)]


# HTTPBearer (not a bare header) so the API docs page offers an "Authorize" button.
_bearer = HTTPBearer(auto_error=False, description="an API key: platform, reviewer or admin")


def _authenticate(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Caller:
    keys: dict[str, Role] = request.app.state.api_keys
    token = credentials.credentials if credentials else ""
    role = keys.get(token)
    if role is None:  # api.edge refused it already; kept for routes mounted without the edge
        raise unauthorized()
    return Caller(key_id=key_id(token), role=role)


def require(*roles: Role) -> Callable[..., Caller]:
    """Admin may do everything; other roles only what the contract gives them."""
    allowed = {*roles, Role.ADMIN}

    def check(caller: Annotated[Caller, Depends(_authenticate)]) -> Caller:
        if caller.role not in allowed:
            raise Problem(
                403,
                "forbidden",
                "This key's role may not do this",
                f"role {caller.role.value} may not; needs one of "
                + ", ".join(sorted(r.value for r in allowed)),
            )
        return caller

    check.allowed_roles = frozenset(allowed)  # type: ignore[attr-defined]  # for api.openapi
    return check


Platform = Annotated[Caller, Depends(require(Role.PLATFORM))]
Reviewer = Annotated[Caller, Depends(require(Role.REVIEWER))]
PlatformOrReviewer = Annotated[Caller, Depends(require(Role.PLATFORM, Role.REVIEWER))]
Admin = Annotated[Caller, Depends(require())]
