"""The console's "declare an incident" form: what a supervisor typed, turned into the API's
`IncidentDeclaration` (the domain model judges it — no second copy of the rules here), and
every refusal turned into a message beside the field it is about.

Only the form's own shapes are handled here: the card keys as one box of ids, the window as
China-time `datetime-local` inputs, an unticked checkbox, empty boxes meaning "not given"."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from api.pages.render import LOCAL
from api.problems import Problem
from domain.incident import IncidentDeclaration

# The inputs, in the order the form shows them; a refusal about anything else is the form's.
FIELDS = (
    "incident_id",
    "card_key_ids",
    "batch_id",
    "supplier",
    "merchant_id",
    "sku",
    "product_type",
    "paid_from",
    "paid_until",
    "selection",
    "reason",
    "destination",
    "rate_per_second",
    "override_limits",
)
# A box left empty that must not be: the page says so in its own words.
REQUIRED = "required"
SEPARATORS = re.compile(r"[\s,，;；]+")
WINDOW = ("paid_from", "paid_until")


@dataclass
class DeclareForm:
    """The form as typed (shown again when refused) and its refusals by field."""

    values: dict[str, str] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)

    def refuse(self, name: str, message: str) -> None:
        self.errors.setdefault(name if name in FIELDS else "form", []).append(message)

    @property
    def override(self) -> bool:
        return self.values.get("override_limits") == "on"


def _local_time(text: str) -> datetime:
    """A `datetime-local` value is China time (what the console shows); stored as UTC."""
    at = datetime.fromisoformat(text)
    if at.tzinfo is None:
        at = at.replace(tzinfo=LOCAL)
    return at.astimezone(UTC)


def _message(error: Any) -> str:
    if error.get("type") in ("missing", "string_too_short") and not error.get("input"):
        return REQUIRED
    text = str(error.get("msg", ""))
    return text.removeprefix("Value error, ")


def _field_of(loc: tuple[Any, ...], message: str) -> str:
    """The input a pydantic error is about: its own field, or — for a rule about the
    selection as a whole — the field its message starts with ("paid_from and paid_until:
    ...")."""
    names = [str(part) for part in loc if isinstance(part, str)]
    name = names[-1] if names else ""
    if name in ("selection", ""):
        for candidate in FIELDS:
            if message.startswith(candidate):
                return candidate
        return name or "form"
    return name


def parse(
    values: dict[str, str], *, declared_by: str
) -> tuple[IncidentDeclaration | None, DeclareForm]:
    """The declaration, or None and the form with its refusals. `declared_by` is the
    signed-in person, never a typed field."""
    form = DeclareForm(values={k: v.strip() for k, v in values.items()})
    v = form.values
    selection: dict[str, Any] = {}
    keys = [k for k in SEPARATORS.split(v.get("card_key_ids", "")) if k]
    if keys:
        selection["card_key_ids"] = keys
    for name in ("batch_id", "supplier", "merchant_id", "sku", "product_type"):
        if v.get(name):
            selection[name] = v[name]
    for name in WINDOW:
        if v.get(name):
            try:
                selection[name] = _local_time(v[name])
            except ValueError:
                form.refuse(name, "not a date and time")
    body: dict[str, Any] = {
        "incident_id": v.get("incident_id", ""),
        "declared_by": declared_by,
        "selection": selection,
        "reason": v.get("reason", ""),
        "destination": v.get("destination") or "original",
        "rate_per_second": v.get("rate_per_second") or None,
        "override_limits": form.override,
    }
    if form.errors:
        return None, form
    try:
        return IncidentDeclaration.model_validate(body), form
    except ValidationError as err:
        for error in err.errors():
            message = _message(error)
            form.refuse(_field_of(tuple(error.get("loc", ())), message), message)
        return None, form


def refused_by_api(form: DeclareForm, problem: Problem) -> DeclareForm:
    """What the API's declare refused (limits, nothing matched, the id open with another
    declaration, Temporal away), put beside the field concerned."""
    errors = problem.errors or []
    if problem.slug == "incident-open":
        form.refuse("incident_id", problem.detail)
    elif not errors:
        form.refuse("form", problem.detail or problem.title)
    for error in errors:
        name, message = str(error.get("field") or "form"), str(error.get("message", ""))
        # The limits' refusal names the API's flag; on this form it is the override box.
        if name == "selection" and "override_limits" in message:
            name = "override_limits"
        form.refuse(name, message)
    return form
