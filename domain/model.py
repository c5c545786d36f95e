"""Shared pydantic bases and field types for everything that crosses a boundary.

The same models are the API's request bodies, the workflow's inputs and the
rows' shapes, so the limits here (lengths, amounts) are the service's limits.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

# Amounts are integer minor units (fen). 10^11 fen is a billion yuan: anything above is a typo.
MAX_AMOUNT = 100_000_000_000
MAX_QUANTITY = 10_000

Amount = Annotated[int, Field(ge=0, le=MAX_AMOUNT, strict=True)]
PositiveAmount = Annotated[int, Field(gt=0, le=MAX_AMOUNT, strict=True)]
Quantity = Annotated[int, Field(ge=1, le=MAX_QUANTITY, strict=True)]
Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:@\-]+$")
]
# Free text: any character but NUL, which PostgreSQL cannot store in text columns.
ShortText = Annotated[str, StringConstraints(max_length=200, pattern=r"^[^\x00]*$")]
LongText = Annotated[str, StringConstraints(max_length=2000, pattern=r"^[^\x00]*$")]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:  # year 1 at +14:00 has no UTC equivalent
        raise ValueError("time is out of range") from None


# Inputs must carry an offset (a naive time is ambiguous); they are stored in UTC.
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]


class Model(BaseModel):
    """Base for values: unknown fields are ignored so integrators can send more later."""

    model_config = ConfigDict(extra="ignore", use_enum_values=False, frozen=False)


def utcnow() -> datetime:
    return datetime.now(UTC)
