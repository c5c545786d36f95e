"""When a review's deadline passes without a person's answer: `on_review_expired` applies
the policy's expiry rule (`review.on_expiry`) to the decision that sent the refund to review.

Pure and deterministic, like `domain.rules.decide`: the workflow calls it when its review
timer fires.
"""

from __future__ import annotations

from domain.decision import Decision, DecisionCase
from domain.item_rules import Line, Unit
from domain.policy import Policy, risk_rank
from domain.requested_items import requested_lines
from domain.types import Outcome, RiskLevel, TopupStatus
from domain.wording import money_en, money_zh

__all__ = ["on_review_expired"]


def _goods_consumed(lines: list[Line]) -> bool:
    return any(
        line.worst is Unit.REDEEMED or line.topup_status is TopupStatus.SUCCEEDED for line in lines
    )


def on_review_expired(case: DecisionCase, decision: Decision, policy: Policy) -> Decision:
    """What happens when a review's deadline passes without an answer (the workflow's timer).

    Small refunds (`review.on_expiry.auto_approve_max_amount`) for buyers at most
    `on_expiry.max_risk` approve themselves; everything else keeps waiting. Never approves a
    blocked buyer (the policy refuses `max_risk: blocked`) or consumed goods (an appeal of a
    redeemed key waits for a person). A decision that is not a review is returned as is.
    """
    if decision.outcome is not Outcome.REVIEW:
        return decision
    expiry = policy.review.on_expiry
    lines, problem = requested_lines(case, policy)
    currency = case.order.currency
    amount = money_en(decision.amount, currency)
    hours = policy.review.deadline_hours
    # Re-checks after another deadline keep the original decision's explanation, once.
    before = f"{decision.rule}: {decision.explanation}"
    if decision.rule.startswith("review.expired_"):
        before = decision.explanation.split("Before: ", 1)[-1]
    approves = (
        problem is None
        and not _goods_consumed(lines)
        and 0 < decision.amount <= expiry.auto_approve_max_amount
        and risk_rank(case.risk.level) <= risk_rank(expiry.max_risk)
        and case.risk.level is not RiskLevel.BLOCKED
    )
    if approves:
        return decision.model_copy(
            update={
                "outcome": Outcome.AUTO_APPROVE,
                "rule": "review.expired_auto_approve",
                "explanation": f"No reviewer answered within {hours} h; {amount} is within the "
                f"expiry limit of {money_en(expiry.auto_approve_max_amount, currency)} for a "
                f"{case.risk.level.value}-risk buyer, so it is refunded. Before: {before}",
                "explanation_zh": f"审核超时未处理，{money_zh(decision.amount, currency)} 属于小额"
                "低风险退款，已自动通过。",
                "policy_version": policy.version,
            }
        )
    return decision.model_copy(
        update={
            "rule": "review.expired_wait",
            "explanation": f"No reviewer answered within {hours} h; {amount} at "
            f"{case.risk.level.value} risk does not approve itself (limit "
            f"{money_en(expiry.auto_approve_max_amount, currency)}, up to "
            f"{expiry.max_risk.value} risk, goods not consumed): escalated, still waiting. "
            f"Before: {before}",
            "explanation_zh": "审核已超时，已升级处理，请耐心等待人工审核结果。",
            "policy_version": policy.version,
        }
    )
