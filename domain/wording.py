"""How the rules engine words its explanations: money, elapsed time and windows, in English
and Chinese. Pure string formatting, no I/O."""

from __future__ import annotations

from datetime import timedelta

from domain.policy import Windows
from domain.types import KeyState, PaymentChannel, RefundReason

# What people call each payment route. A route without a name here shows its channel word.
CHANNEL_NAMES: dict[PaymentChannel, str] = {
    PaymentChannel.ALIPAY: "Alipay",
    PaymentChannel.WECHAT: "WeChat Pay",
    PaymentChannel.BALANCE: "platform balance",
}

# The refund reason as the gateway shows it to the buyer (WeChat Pay prints it on the refund
# notice): a sentence, never our enum code. At most 80 characters (WeChat's limit).
REASONS_FOR_BUYER: dict[RefundReason, str] = {
    RefundReason.INVALID_KEY: "卡密无效，商家退款",
    RefundReason.NOT_RECEIVED: "商品未发货，商家退款",
    RefundReason.NOT_AS_DESCRIBED: "商品与描述不符，商家退款",
    RefundReason.DUPLICATE_CHARGE: "重复扣款，商家退款",
    RefundReason.WRONG_PURCHASE: "买错商品，商家退款",
    RefundReason.CHANGED_MIND: "买家申请退款",
    RefundReason.TECHNICAL_ISSUE: "商品无法使用，商家退款",
    RefundReason.OTHER: "买家申请退款",
}


def channel_name(channel: PaymentChannel) -> str:
    return CHANNEL_NAMES.get(channel, channel.value)


def reason_for_buyer(reason: RefundReason) -> str:
    return REASONS_FOR_BUYER[reason]


def money_en(amount: int, currency: str = "CNY") -> str:
    return f"{amount // 100}.{amount % 100:02d} {currency}"


def money_zh(amount: int, currency: str = "CNY") -> str:
    unit = "元" if currency == "CNY" else f" {currency}"
    return f"{amount // 100}.{amount % 100:02d}{unit}"


def elapsed_en(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} days {hours} h" if hours else f"{days} days"


def elapsed_zh(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 60:
        return f"{minutes}分钟"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}小时{minutes}分钟" if minutes else f"{hours}小时"
    days, hours = divmod(hours, 24)
    return f"{days}天{hours}小时" if hours else f"{days}天"


def self_service_limit_en(windows: Windows) -> str:
    if windows.hard_limit_days is not None:
        return f"{windows.hard_limit_days} days"
    return f"{windows.conditional_hours} hours"


def self_service_limit_zh(windows: Windows) -> str:
    if windows.hard_limit_days is not None:
        return f"{windows.hard_limit_days}天"
    return f"{windows.conditional_hours}小时"


def yuan(fen: int) -> str:
    """¥50.00: how the timeline shows money."""
    return f"¥{fen // 100}.{fen % 100:02d}"


# The timeline stages whose detail is `describe_keys`' words: the check and every re-check.
KEY_CHECK_STAGES = ("card_key_checked", "card_key_rechecked")


def describe_keys(states: dict[str, KeyState]) -> str:
    """`K-1: unredeemed, K-2: locked`: what the supplier said, for the timeline."""
    return ", ".join(f"{k}: {s.value}" for k, s in sorted(states.items())) or "no card keys"


def read_keys(detail: str) -> dict[str, KeyState | None]:
    """`describe_keys`' words read back: each key and its state (None for a word that is not
    a state, e.g. one written by an older release)."""
    states: dict[str, KeyState | None] = {}
    for part in detail.split(", "):
        key, sep, state = part.rpartition(": ")
        if sep:
            try:
                states[key] = KeyState(state)
            except ValueError:
                states[key] = None
    return states
