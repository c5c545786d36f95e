"""The activities' messages, as the workflow imports them. They live in
`workflow_api.messages`, beside the workflow's other public words, so the API and the
sweeper can use them without importing `activities/`."""

from workflow_api.messages import (
    AbandonPayout,
    AbnormalRescue,
    AuditEvent,
    CaseFile,
    CaseRequest,
    CommissionAction,
    CommissionAnswer,
    CommissionRequest,
    GatewayNotice,
    KeysAnswer,
    KeysRequest,
    PayoutRequest,
    ProgressReport,
    RefundInput,
    RiskRequest,
    SettlementQuery,
)

__all__ = [
    "AbandonPayout",
    "AbnormalRescue",
    "AuditEvent",
    "CaseFile",
    "CaseRequest",
    "CommissionAction",
    "CommissionAnswer",
    "CommissionRequest",
    "GatewayNotice",
    "KeysAnswer",
    "KeysRequest",
    "PayoutRequest",
    "ProgressReport",
    "RefundInput",
    "RiskRequest",
    "SettlementQuery",
]
