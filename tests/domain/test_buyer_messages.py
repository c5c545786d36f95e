"""The buyer's SMS and e-mail words: one template per stage and language, every variable
filled, contacts masked."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from domain.buyer_messages import (
    STAGE_OF_STATUS,
    TEMPLATES,
    BuyerStage,
    Facts,
    email,
    sms_text,
    variables,
)
from domain.contacts import BuyerContact, Language, mask_email, mask_phone
from domain.types import Destination, RefundStatus

FACTS = Facts(
    refund_id="rf_abc",
    order_id="O-1001",
    amount=5000,
    currency="CNY",
    destination=Destination.ORIGINAL,
    deadline=datetime(2026, 11, 24, 10, 0, tzinfo=UTC),
)
LINK = "https://refunds.example/r/rf_abc?t=1.x"


@pytest.mark.parametrize("stage", list(BuyerStage))
@pytest.mark.parametrize("language", list(Language))
def test_every_stage_has_words_in_both_languages_with_every_variable_filled(
    stage: BuyerStage, language: Language
) -> None:
    words = TEMPLATES[(stage, language)]
    params = variables(FACTS, language, LINK)
    text = sms_text(words.sms.code, params)
    mail = email(stage, language, params)
    for rendered in (text, mail.subject, mail.body):
        assert "${" not in rendered
    assert "rf_abc" in text and "rf_abc" in mail.body and LINK in mail.body
    chinese = bool(re.search(r"[\u4e00-\u9fff]", text + mail.subject))
    assert chinese is (language is Language.ZH)


def test_the_words_carry_the_money_the_deadline_and_the_appeal_link() -> None:
    zh, en = variables(FACTS, Language.ZH, LINK), variables(FACTS, Language.EN, LINK)
    assert (
        sms_text("SMS_KAMI_ARRIVED_ZH", zh)
        == "您的退款50.00元已退回原支付账户（单号rf_abc），请查收。"
    )
    assert "11月24日18:00（北京时间）" in sms_text("SMS_KAMI_REVIEW_ZH", zh)
    assert "24 Nov 10:00 UTC" in sms_text("SMS_KAMI_REVIEW_EN", en)
    assert sms_text("SMS_KAMI_REJECTED_EN", en).endswith(f"You may appeal once: {LINK}")
    assert LINK in sms_text("SMS_KAMI_REJECTED_ZH", zh)


def test_only_the_stages_a_buyer_cares_about_send_anything() -> None:
    assert set(STAGE_OF_STATUS.values()) == set(BuyerStage)
    for quiet in (RefundStatus.CHECKING, RefundStatus.NEEDS_ATTENTION, RefundStatus.CANCELLED):
        assert quiet not in STAGE_OF_STATUS
    assert Facts.from_json(FACTS.to_json()) == FACTS


def test_contacts_are_masked() -> None:
    assert mask_phone("13812345678") == "138****5678"
    assert mask_phone("+447700900123") == "+44******0123"
    assert mask_email("alice@example.com") == "a***@example.com"
    masked = BuyerContact(phone="13812345678", email="alice@example.com").masked()
    assert masked.model_dump(mode="json") == {
        "phone": "138****5678",
        "email": "a***@example.com",
        "language": "zh",
    }


# The README's "What a buyer receives" shows these, generated from the templates:
# python -c "from tests.domain.test_buyer_messages import readme_examples as r; print(r())"
EXAMPLE = Facts(
    refund_id="rf_3b1c9e0a",
    order_id="O-1001",
    amount=5000,
    currency="CNY",
    deadline=datetime(2026, 11, 24, 10, 0, tzinfo=UTC),
)
EXAMPLE_LINK = "https://refunds.example/r/rf_3b1c9e0a?t=…"


def readme_examples() -> str:
    blocks = []
    for stage in BuyerStage:
        for language in Language:
            params = variables(EXAMPLE, language, EXAMPLE_LINK)
            words = TEMPLATES[(stage, language)]
            mail = email(stage, language, params)
            blocks.append(
                f"**{stage.value}, {language.value}** (`{words.sms.code}`)\n\n"
                f"```\nSMS:     【卡密退款】{sms_text(words.sms.code, params)}\n"
                f"Subject: {mail.subject}\n\n{mail.body}```"
            )
    return "\n\n".join(blocks)


def test_the_readme_shows_what_the_templates_send() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    assert readme_examples() in readme
