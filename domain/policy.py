"""The refund policy: windows, usage thresholds, limits and risk thresholds, read from YAML.

A `Policy` is plain data. The rules engine (`domain.rules`) reads it, the workflow carries
it as an argument (so it is a serialisable pydantic model), and operators edit it as a YAML
file that the worker re-reads without a restart (`CurrentPolicy`).

Rules for one item are resolved from the most general to the most specific entry; each
later entry overrides only the keys it names:

    product_types.<type>  <  merchants.<m>.product_types.<type>  <  skus.<sku>
                          <  merchants.<m>.skus.<sku>

Unknown keys are errors (a typo must not silently fall back to a default), and every
error names the key path, e.g. ``policy invalid at product_types.course.windows.
cooling_off_minutes: Input should be greater than or equal to 0``.

Importing this module does no I/O and does not import `yaml`, so workflow code may
import it; only the loading functions read files.

This module is where the rest of the service imports the policy from. The sections and the
whole `Policy` live in `domain.policy_sections`; reading files, validation errors and hot
reload (`CurrentPolicy`) in `domain.policy_loading`.
"""

from __future__ import annotations

from domain.policy_loading import (
    DEFAULT_POLICY_RESOURCE,
    CurrentPolicy,
    PolicyError,
    default_policy_text,
    load_policy,
    parse_policy,
    policy_from_data,
)
from domain.policy_sections import (
    FastLane,
    FastLaneOverride,
    IncidentPolicy,
    MerchantPolicy,
    PayoutPolicy,
    Policy,
    PolicyOverride,
    PolicyPart,
    ProductRules,
    ProductRulesOverride,
    ProductTypes,
    ReasonsPolicy,
    ReviewExpiry,
    ReviewPolicy,
    RiskPolicy,
    RiskWeights,
    SelfHelp,
    SelfHelpStep,
    UsageLimits,
    UsageLimitsOverride,
    Windows,
    WindowsOverride,
    apply_override,
    risk_rank,
)

__all__ = [
    "DEFAULT_POLICY_RESOURCE",
    "CurrentPolicy",
    "FastLane",
    "FastLaneOverride",
    "IncidentPolicy",
    "MerchantPolicy",
    "PayoutPolicy",
    "Policy",
    "PolicyError",
    "PolicyOverride",
    "PolicyPart",
    "ProductRules",
    "ProductRulesOverride",
    "ProductTypes",
    "ReasonsPolicy",
    "ReviewExpiry",
    "ReviewPolicy",
    "RiskPolicy",
    "RiskWeights",
    "SelfHelp",
    "SelfHelpStep",
    "UsageLimits",
    "UsageLimitsOverride",
    "Windows",
    "WindowsOverride",
    "apply_override",
    "default_policy_text",
    "load_policy",
    "parse_policy",
    "policy_from_data",
    "risk_rank",
]
