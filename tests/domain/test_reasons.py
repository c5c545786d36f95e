"""The free-text reason classifier, in Chinese and English."""

from __future__ import annotations

import pytest

from domain.reasons import classify, mentioned_reasons
from domain.types import RefundReason as R


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("卡密用不了", R.TECHNICAL_ISSUE),
        ("一直报错", R.TECHNICAL_ISSUE),
        ("无法使用", R.TECHNICAL_ISSUE),
        ("和我的系统不兼容", R.TECHNICAL_ISSUE),
        ("视频无法播放", R.TECHNICAL_ISSUE),
        ("I can't use it", R.TECHNICAL_ISSUE),
        ("I can’t use it", R.TECHNICAL_ISSUE),
        ("Error 0x80 on start", R.TECHNICAL_ISSUE),
        ("It DOESN'T WORK", R.TECHNICAL_ISSUE),
        ("something went wrong", R.TECHNICAL_ISSUE),
        ("没收到卡密", R.NOT_RECEIVED),
        ("充值未到账", R.NOT_RECEIVED),
        ("order not received", R.NOT_RECEIVED),
        ("卡密无效", R.INVALID_KEY),
        ("提示已被使用，无法使用", R.INVALID_KEY),
        ("the key is invalid", R.INVALID_KEY),
        ("重复扣款了", R.DUPLICATE_CHARGE),
        ("扣了两次钱", R.DUPLICATE_CHARGE),
        ("I was charged twice", R.DUPLICATE_CHARGE),
        ("买错了", R.WRONG_PURCHASE),
        ("bought the wrong one", R.WRONG_PURCHASE),
        ("不想要了", R.CHANGED_MIND),
        ("I changed my mind", R.CHANGED_MIND),
        ("与描述不符", R.NOT_AS_DESCRIBED),
        ("", R.OTHER),
        ("随便", R.OTHER),
        ("terrorist", R.OTHER),  # "error" must start a word
    ],
)
def test_free_text_decides_when_the_buyer_picked_other(text: str, expected: R) -> None:
    assert classify(R.OTHER, text) is expected


@pytest.mark.parametrize(
    ("picked", "text", "expected"),
    [
        (R.CHANGED_MIND, "用不了", R.TECHNICAL_ISSUE),  # clearly technical: support first
        (R.INVALID_KEY, "卡密用不了", R.TECHNICAL_ISSUE),
        (R.INVALID_KEY, "卡密无效，用不了", R.INVALID_KEY),  # the text backs the pick
        (R.DUPLICATE_CHARGE, "扣了两次，还报错", R.DUPLICATE_CHARGE),
        (R.CHANGED_MIND, "没收到，用不了", R.CHANGED_MIND),  # not clearly technical
        (R.NOT_RECEIVED, "", R.NOT_RECEIVED),
        (R.WRONG_PURCHASE, "不想要了", R.WRONG_PURCHASE),  # an explicit pick wins
        (R.TECHNICAL_ISSUE, "不想要了", R.TECHNICAL_ISSUE),
    ],
)
def test_an_explicit_pick_wins_unless_the_text_is_clearly_technical(
    picked: R, text: str, expected: R
) -> None:
    assert classify(picked, text) is expected


def test_policy_keywords_extend_the_tables() -> None:
    extra = {R.TECHNICAL_ISSUE: ["卡住了"], R.NOT_RECEIVED: ["nothing came"]}
    assert classify(R.OTHER, "进度卡住了") is R.OTHER
    assert classify(R.OTHER, "进度卡住了", extra_keywords=extra) is R.TECHNICAL_ISSUE
    assert classify(R.OTHER, "Nothing came", extra_keywords=extra) is R.NOT_RECEIVED


def test_mentions_come_in_priority_order() -> None:
    assert mentioned_reasons("报错，而且扣了两次") == [R.DUPLICATE_CHARGE, R.TECHNICAL_ISSUE]
