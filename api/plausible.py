"""Plausibility checks that need the wall clock, kept at the API edge.

The domain models are also the workflow's inputs, and workflow code replays: a model
validator that read "now" would judge the same history differently on every replay. So the
models check shapes and ranges, and the routers check against the clock here, once, when
the request arrives.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

from pydantic import BaseModel

from api.problems import Problem


def times(value: object, path: str = "") -> Iterator[tuple[str, datetime]]:
    """Every datetime in a model tree, with its field path as problem+json names fields
    (`items[0].card_keys[0].delivered_at`)."""
    if isinstance(value, datetime):
        yield path, value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from times(getattr(value, name), f"{path}.{name}" if path else name)
    elif isinstance(value, list | tuple):
        for n, item in enumerate(value):
            yield from times(item, f"{path}[{n}]")


def refuse_future_times(model: BaseModel, *, now: datetime, skew: timedelta) -> None:
    """A fact reported as having happened (paid, created, delivered) cannot be later than
    now, give or take the clock skew between the caller and us: 422 naming each such field."""
    latest = now + skew
    late = [(field, at) for field, at in times(model) if at > latest]
    if late:
        errors = [
            {
                "field": field,
                "message": f"is in the future ({at.isoformat()} is after {now.isoformat()} "
                f"plus {int(skew.total_seconds())} s of clock skew)",
                "type": "future_time",
            }
            for field, at in late
        ]
        raise Problem(
            422,
            "validation",
            "Request is not valid",
            "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5]),
            errors=errors,
        )
