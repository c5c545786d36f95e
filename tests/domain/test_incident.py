"""Incidents in domain words (domain/incident.py, domain/incident_run.py): what a selection
means, the dry run's verdict per order, the policy's limits, who may confirm, and the rules'
verdict on an incident's refund. Pure: no Temporal, no database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from domain import rules
from domain.incident import (
    IncidentDeclaration,
    IncidentMark,
    IncidentSelection,
    SkipReason,
    batch_size,
    effective_rate,
    incident_refund_id,
    limit_refusal,
    plan_order,
    selection_refusal,
)
from domain.incident_run import (
    ConfirmIncident,
    IncidentState,
    IncidentStatus,
    IncidentView,
    ResumeIncident,
    StopIncident,
    may_cancel,
    may_confirm,
    may_resume,
)
from domain.order import Order
from domain.policy import IncidentPolicy, load_policy
from domain.types import KeyState, OrderStatus, Outcome, RiskLevel
from tests.domain.factories import PAID_AT, card_key_item, case, content_item, order

POLICY = load_policy(None)


def test_a_selection_names_keys_or_a_window() -> None:
    assert IncidentSelection(batch_id="B-1").by_keys
    with pytest.raises(ValidationError, match="paid_from and paid_until: required"):
        IncidentSelection(merchant_id="M-7")
    with pytest.raises(ValidationError, match="name card_key_ids"):
        IncidentSelection()
    with pytest.raises(ValidationError, match="after paid_from"):
        IncidentSelection(merchant_id="M-7", paid_from=PAID_AT, paid_until=PAID_AT)
    with pytest.raises(ValidationError, match="each at most once"):
        IncidentSelection(card_key_ids=["K-1", "K-1"])
    with pytest.raises(ValidationError, match="buyers are shown it"):
        IncidentDeclaration(
            incident_id="I", declared_by="sam", selection={"batch_id": "B"}, reason="  "
        )


def test_the_selection_picks_the_items_holding_its_keys() -> None:
    o = order(card_key_item("I-1"), card_key_item("I-2", sku="psn-100"))
    selection = IncidentSelection(card_key_ids=["K-I-2-0"])
    planned = plan_order(o, selection, already_refunded={}, open_items=set(), key_states={})
    assert planned.skip is None and [i.item_id for i in planned.items] == ["I-2"]
    assert planned.amount == 5000
    window = IncidentSelection(
        merchant_id="M-7",
        sku="steam-50",
        paid_from=PAID_AT - timedelta(hours=1),
        paid_until=PAID_AT + timedelta(hours=1),
    )
    assert window.matches_order(o)
    assert not window.matches_order(order(card_key_item(), merchant_id="M-8"))


@pytest.mark.parametrize(
    ("o", "refunded", "held", "states", "why"),
    [
        (order(), {"I-1": 1}, set(), {}, SkipReason.ALREADY_REFUNDED),
        (order(), {}, {"I-1"}, {}, SkipReason.REFUND_OPEN),
        (order(), {}, set(), {"K-I-1-0": KeyState.REDEEMED}, SkipReason.KEY_REDEEMED),
        (order(status=OrderStatus.UNPAID), {}, set(), {}, SkipReason.UNPAID),
    ],
)
def test_the_dry_run_skips_orders_and_says_why(
    o: Order,
    refunded: dict[str, int],
    held: set[str],
    states: dict[str, KeyState],
    why: SkipReason,
) -> None:
    planned = plan_order(
        o,
        IncidentSelection(card_key_ids=["K-I-1-0"]),
        already_refunded=refunded,
        open_items=held,
        key_states=states,
    )
    assert planned.skip is why and planned.amount == 0


def test_what_remains_of_an_item_is_refunded() -> None:
    o = order(card_key_item(quantity=3))
    planned = plan_order(
        o,
        IncidentSelection(card_key_ids=["K-I-1-0"]),
        already_refunded={"I-1": 1},
        open_items=set(),
        key_states={},
    )
    assert [(i.item_id, i.quantity) for i in planned.items] == [("I-1", 2)]
    assert planned.amount == 10000


def test_limits_refuse_nothing_matched_and_too_much_without_override() -> None:
    limits = IncidentPolicy(max_orders=2, max_amount=10_000)
    assert "matches no order" in (selection_refusal(0) or "")
    assert selection_refusal(1) is None
    too_many = limit_refusal(orders=3, amounts={}, limits=limits, override=False)
    assert too_many is not None and "incidents.max_orders" in too_many
    too_much = limit_refusal(orders=1, amounts={"CNY": 10_001}, limits=limits, override=False)
    assert too_much is not None and "incidents.max_amount" in too_much
    assert limit_refusal(orders=3, amounts={}, limits=limits, override=True) is None
    assert effective_rate(None, limits) == limits.default_rate_per_second
    assert effective_rate(10_00, limits) == limits.max_rate_per_second
    assert batch_size(0.2, 100) == 1 and batch_size(7, 100) == 7 and batch_size(500, 100) == 100


def test_an_orders_incident_refund_is_the_same_however_often_declared() -> None:
    assert incident_refund_id("INC-7", "O-1") == incident_refund_id("INC-7", "O-1")
    assert incident_refund_id("INC-7", "O-1") != incident_refund_id("INC-8", "O-1")


def _view(state: IncidentState) -> IncidentView:
    return IncidentView(
        incident_id="INC-7",
        declaration=IncidentDeclaration(
            incident_id="INC-7", declared_by="sam", selection={"batch_id": "B"}, reason="bad"
        ),
        declared_at=PAID_AT,
        workflow_id="incident-INC-7",
        **IncidentStatus(state=state, rate_per_second=5, updated_at=PAID_AT).model_dump(),
    )


def test_a_second_person_confirms_once_after_the_dry_run() -> None:
    waiting = _view(IncidentState.AWAITING_CONFIRMATION)
    refusal = may_confirm(waiting, ConfirmIncident(by="Sam"))
    assert refusal is not None and refusal.problem == "second-person-needed"
    assert may_confirm(waiting, ConfirmIncident(by="lee")) is None
    assert may_confirm(_view(IncidentState.PLANNING), ConfirmIncident(by="lee")) is not None
    assert may_confirm(_view(IncidentState.RUNNING), ConfirmIncident(by="lee")) is not None
    assert may_cancel(_view(IncidentState.COMPLETED), StopIncident(by="lee")) is not None
    assert may_cancel(_view(IncidentState.PAUSED), StopIncident(by="lee")) is None
    fast = ResumeIncident(by="lee", rate_per_second=500)
    assert may_resume(_view(IncidentState.PAUSED), fast, IncidentPolicy()) is not None


def test_the_rules_refund_an_incidents_order_as_the_shops_fault() -> None:
    # A course watched to 80 %, long after the window: a buyer would be refused; the shop
    # refunds it on its own initiative.
    c = case(order(content_item(progress_pct=80)), after=timedelta(days=60), key_state=None)
    assert rules.decide(c, POLICY).outcome is not Outcome.AUTO_APPROVE
    mark = IncidentMark(incident_id="INC-7", reason="课程服务中断")
    decision = rules.decide(c.model_copy(update={"incident": mark}), POLICY)
    assert decision.outcome is Outcome.AUTO_APPROVE and decision.rule == "incident.shop_fault"
    # A key redeemed since the dry run, or a blacklisted buyer: a person decides.
    redeemed = case(key_state=KeyState.REDEEMED).model_copy(update={"incident": mark})
    assert rules.decide(redeemed, POLICY).rule == "incident.key_redeemed"
    blocked = case(risk=RiskLevel.BLOCKED).model_copy(update={"incident": mark})
    assert rules.decide(blocked, POLICY).outcome is Outcome.REVIEW
    high = case(risk=RiskLevel.HIGH).model_copy(update={"incident": mark})
    assert rules.decide(high, POLICY).outcome is Outcome.AUTO_APPROVE
