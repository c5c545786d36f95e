"""The console's declare form (api/pages/incident_form.py) without a server: what a person
typed becomes the API's declaration, and each refusal — the domain model's or the API's —
lands beside the field it is about (the browser test shows them on the page)."""

from __future__ import annotations

from datetime import UTC, datetime

from api.pages.incident_form import REQUIRED, DeclareForm, parse, refused_by_api
from api.problems import Problem, field_error
from domain.incident import limit_refusal
from domain.policy import IncidentPolicy


def test_a_typed_form_becomes_the_declaration() -> None:
    declaration, form = parse(
        {
            "incident_id": " INC-7 ",
            "card_key_ids": "K-1, K-2\nK-3；K-4",
            "reason": "供应商批次卡密失效",
            "destination": "balance",
            "rate_per_second": "2.5",
            "override_limits": "on",
            "declared_by": "mallory",  # a typed name is never the declarer
        },
        declared_by="sam",
    )
    assert not form.errors and declaration is not None
    assert declaration.incident_id == "INC-7" and declaration.declared_by == "sam"
    assert declaration.selection.card_key_ids == ["K-1", "K-2", "K-3", "K-4"]
    assert declaration.destination.value == "balance" and declaration.rate_per_second == 2.5
    assert declaration.override_limits is True


def test_the_window_is_china_time() -> None:
    declaration, form = parse(
        {
            "incident_id": "INC-8",
            "merchant_id": "M-1",
            "paid_from": "2026-11-01T08:00",
            "paid_until": "2026-11-02T08:00",
            "reason": "outage",
        },
        declared_by="sam",
    )
    assert declaration is not None, form.errors
    assert declaration.selection.paid_from == datetime(2026, 11, 1, 0, 0, tzinfo=UTC)


def test_refusals_land_beside_their_fields() -> None:
    declaration, form = parse(
        {"incident_id": "bad id!", "merchant_id": "M-1", "rate_per_second": "fast"},
        declared_by="sam",
    )
    assert declaration is None
    assert set(form.errors) == {"incident_id", "paid_from", "reason", "rate_per_second"}
    assert form.errors["reason"] == [REQUIRED]
    assert form.errors["paid_from"][0].startswith("paid_from and paid_until: required")
    _, nothing = parse({"incident_id": "INC-9", "reason": "x"}, declared_by="sam")
    assert list(nothing.errors) == ["selection"]
    _, garbled = parse(
        {"incident_id": "INC-9", "batch_id": "B", "paid_from": "soon", "reason": "x"},
        declared_by="sam",
    )
    assert list(garbled.errors) == ["paid_from"]


def test_the_apis_refusals_name_the_form_fields() -> None:
    form = DeclareForm()
    limits = IncidentPolicy(max_orders=10)
    over = limit_refusal(orders=11, amounts={}, limits=limits, override=False)
    assert over is not None
    refused_by_api(
        form,
        Problem(
            422, "incident-refused", "", over, errors=[{"field": "selection", "message": over}]
        ),
    )
    refused_by_api(form, field_error("rate_per_second", "at most 50"))
    refused_by_api(form, Problem(409, "incident-open", "", "incident INC-7 is running"))
    refused_by_api(form, Problem(503, "temporal-unavailable", "Could not start the incident yet"))
    assert form.errors["override_limits"] == [over]  # beside the override box
    assert form.errors["rate_per_second"] == ["at most 50"]
    assert form.errors["incident_id"] == ["incident INC-7 is running"]
    assert form.errors["form"] == ["Could not start the incident yet"]
