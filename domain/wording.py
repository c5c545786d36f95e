"""How the rules engine words its explanations: money, elapsed time and windows, in English
and Chinese. Pure string formatting, no I/O."""

from __future__ import annotations

from datetime import timedelta

from domain.policy import Windows


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
