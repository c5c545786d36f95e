"""What a buyer receives by SMS and e-mail, in Chinese and English: one message per stage the
buyer cares about, no more.

SMS templates are written the way Aliyun SMS registers them: a template code and a text with
`${name}` variables; `SendSms` names the code and sends the variables, the provider renders the
text (the sandbox renders these same texts). E-mails are rendered here, from the same words.
Pure string work, no I/O: the dispatcher fills in the link and sends."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from string import Template

from domain.contacts import Language
from domain.types import Destination, RefundStatus
from domain.wording import money_en, money_zh


class BuyerStage(StrEnum):
    SUBMITTED = "submitted"
    NEEDS_REVIEW = "needs_review"
    APPROVED = "approved"  # the money is on its way, not there yet
    MONEY_ARRIVED = "money_arrived"
    REJECTED = "rejected"  # with the link to appeal
    REPLACEMENT_DELIVERED = "replacement_delivered"  # a fresh key instead of money (补发)


# The stored status that announces each stage. `approved` is sent when the refund rests with
# the money on its way; a refund that pays at once goes straight to `money_arrived`, and the
# buyer gets that one message rather than two in the same second.
STAGE_OF_STATUS: dict[RefundStatus, BuyerStage] = {
    RefundStatus.SUBMITTED: BuyerStage.SUBMITTED,
    RefundStatus.PENDING_REVIEW: BuyerStage.NEEDS_REVIEW,
    RefundStatus.APPROVED: BuyerStage.APPROVED,
    RefundStatus.REFUNDING: BuyerStage.APPROVED,
    RefundStatus.REFUNDED: BuyerStage.MONEY_ARRIVED,
    RefundStatus.REJECTED: BuyerStage.REJECTED,
    RefundStatus.REPLACED: BuyerStage.REPLACEMENT_DELIVERED,
}


@dataclass(frozen=True)
class SmsTemplate:
    code: str  # what Aliyun calls the registered template (TemplateCode)
    text: str


@dataclass(frozen=True)
class Words:
    sms: SmsTemplate
    subject: str
    # The e-mail's lines after the SMS's sentence; same variables.
    more: str


_ZH_MORE = "订单号：${order}\n退款单号：${refund}\n金额：${amount}\n查看进度：${link}"
_EN_MORE = "Order: ${order}\nRefund: ${refund}\nAmount: ${amount}\nTrack it: ${link}"
# A fresh key moves no money: no amount to show. The key itself is on the order page, never
# in a message (nor anywhere in this service: only its id).
_ZH_KEY_MORE = "订单号：${order}\n退款单号：${refund}\n查看进度：${link}"
_EN_KEY_MORE = "Order: ${order}\nRefund: ${refund}\nTrack it: ${link}"

TEMPLATES: dict[tuple[BuyerStage, Language], Words] = {
    (BuyerStage.SUBMITTED, Language.ZH): Words(
        SmsTemplate(
            "SMS_KAMI_SUBMITTED_ZH",
            "您的退款申请已提交（${amount}，单号${refund}），我们会尽快处理。进度：${link}",
        ),
        "退款申请已提交",
        _ZH_MORE,
    ),
    (BuyerStage.SUBMITTED, Language.EN): Words(
        SmsTemplate(
            "SMS_KAMI_SUBMITTED_EN",
            "We received your refund request for ${amount} (ref ${refund}). Track it: ${link}",
        ),
        "We received your refund request",
        _EN_MORE,
    ),
    (BuyerStage.NEEDS_REVIEW, Language.ZH): Words(
        SmsTemplate(
            "SMS_KAMI_REVIEW_ZH",
            "您的退款申请（单号${refund}）需人工审核，我们将在${deadline}前答复。进度：${link}",
        ),
        "退款申请正在人工审核",
        _ZH_MORE,
    ),
    (BuyerStage.NEEDS_REVIEW, Language.EN): Words(
        SmsTemplate(
            "SMS_KAMI_REVIEW_EN",
            "A person is reviewing your refund request (ref ${refund}); you will hear by "
            "${deadline}. Track it: ${link}",
        ),
        "A person is reviewing your refund request",
        _EN_MORE,
    ),
    (BuyerStage.APPROVED, Language.ZH): Words(
        SmsTemplate(
            "SMS_KAMI_APPROVED_ZH",
            "您的退款申请（单号${refund}）已通过，${amount}正在退回${route}。进度：${link}",
        ),
        "退款已通过",
        _ZH_MORE,
    ),
    (BuyerStage.APPROVED, Language.EN): Words(
        SmsTemplate(
            "SMS_KAMI_APPROVED_EN",
            "Your refund (ref ${refund}) was approved: ${amount} is on its way to ${route}. "
            "Track it: ${link}",
        ),
        "Your refund was approved",
        _EN_MORE,
    ),
    (BuyerStage.MONEY_ARRIVED, Language.ZH): Words(
        SmsTemplate(
            "SMS_KAMI_ARRIVED_ZH",
            "您的退款${amount}已退回${route}（单号${refund}），请查收。",
        ),
        "退款已到账",
        _ZH_MORE,
    ),
    (BuyerStage.MONEY_ARRIVED, Language.EN): Words(
        SmsTemplate(
            "SMS_KAMI_ARRIVED_EN",
            "Your refund of ${amount} has been paid back to ${route} (ref ${refund}).",
        ),
        "Your refund has arrived",
        _EN_MORE,
    ),
    (BuyerStage.REJECTED, Language.ZH): Words(
        SmsTemplate(
            "SMS_KAMI_REJECTED_ZH",
            "很抱歉，您的退款申请（单号${refund}）未通过。如有异议，可申诉一次：${link}",
        ),
        "退款申请未通过",
        _ZH_MORE,
    ),
    (BuyerStage.REJECTED, Language.EN): Words(
        SmsTemplate(
            "SMS_KAMI_REJECTED_EN",
            "Sorry: your refund request (ref ${refund}) was not approved. You may appeal "
            "once: ${link}",
        ),
        "Your refund request was not approved",
        _EN_MORE,
    ),
    (BuyerStage.REPLACEMENT_DELIVERED, Language.ZH): Words(
        SmsTemplate(
            "SMS_KAMI_REPLACED_ZH",
            "您反馈无效的卡密已为您补发新卡密（单号${refund}），请在订单页查看。进度：${link}",
        ),
        "新卡密已补发",
        _ZH_KEY_MORE,
    ),
    (BuyerStage.REPLACEMENT_DELIVERED, Language.EN): Words(
        SmsTemplate(
            "SMS_KAMI_REPLACED_EN",
            "A fresh card key replaces the one that did not work (ref ${refund}); find it on "
            "your order page. Track it: ${link}",
        ),
        "Your replacement card key is ready",
        _EN_KEY_MORE,
    ),
}

SMS_TEXT_BY_CODE = {w.sms.code: w.sms.text for w in TEMPLATES.values()}
_ROUTE = {
    (Destination.ORIGINAL, Language.ZH): "原支付账户",
    (Destination.ORIGINAL, Language.EN): "your original payment method",
    (Destination.BALANCE, Language.ZH): "平台余额",
    (Destination.BALANCE, Language.EN): "your platform balance",
}
_CHINA = timezone(timedelta(hours=8))


@dataclass(frozen=True)
class Facts:
    """What a message says, as the outbox row keeps it (no contact, no link)."""

    refund_id: str
    order_id: str
    amount: int
    currency: str
    destination: Destination = Destination.ORIGINAL
    deadline: datetime | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "refund_id": self.refund_id,
            "order_id": self.order_id,
            "amount": self.amount,
            "currency": self.currency,
            "destination": self.destination.value,
            "deadline": self.deadline.isoformat() if self.deadline else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Facts:
        deadline = data.get("deadline")
        return cls(
            refund_id=str(data["refund_id"]),
            order_id=str(data["order_id"]),
            amount=int(str(data["amount"])),
            currency=str(data["currency"]),
            destination=Destination(str(data.get("destination") or "original")),
            deadline=datetime.fromisoformat(deadline) if isinstance(deadline, str) else None,
        )


def variables(facts: Facts, language: Language, link: str) -> dict[str, str]:
    """The template variables: what `SendSms` sends as TemplateParam."""
    zh = language is Language.ZH
    deadline = ""
    if facts.deadline is not None:
        if zh:  # Beijing time, as the shop's buyers read it
            d = facts.deadline.astimezone(_CHINA)
            deadline = f"{d.month}月{d.day}日{d.hour:02d}:{d.minute:02d}（北京时间）"
        else:
            deadline = facts.deadline.astimezone(UTC).strftime("%d %b %H:%M UTC")
    return {
        "refund": facts.refund_id,
        "order": facts.order_id,
        "amount": money_zh(facts.amount, facts.currency)
        if zh
        else money_en(facts.amount, facts.currency),
        "route": _ROUTE[(facts.destination, language)],
        "deadline": deadline,
        "link": link,
    }


def sms_text(code: str, params: dict[str, str]) -> str:
    """What the provider sends for template `code` (the sandbox renders it the same way)."""
    return Template(SMS_TEXT_BY_CODE[code]).safe_substitute(params)


@dataclass(frozen=True)
class Email:
    subject: str
    body: str


def email(stage: BuyerStage, language: Language, params: dict[str, str]) -> Email:
    words = TEMPLATES[(stage, language)]
    first = Template(words.sms.text).safe_substitute(params)
    more = Template(words.more).safe_substitute(params)
    return Email(subject=words.subject, body=f"{first}\n\n{more}\n")
