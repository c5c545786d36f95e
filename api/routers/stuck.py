"""`GET /v1/admin/stuck`: what `refundctl stuck` prints, for dashboards and on-call tools."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import Admin, ReadSessionsDep, SettingsDep, TemporalDep
from ops.stuck import StuckReport, find_stuck
from store.figures import stage_limits

router = APIRouter(prefix="/v1/admin", tags=["admin"])


@router.get(
    "/stuck",
    summary="Refunds past their stage's limit, why, and the command that fixes each",
)
async def list_stuck(
    reads: ReadSessionsDep,
    temporal: TemporalDep,
    settings: SettingsDep,
    _: Admin,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> StuckReport:
    return await find_stuck(reads, temporal, limits=stage_limits(settings), limit=limit)
