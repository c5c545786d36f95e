"""What the buyer's free text says, as a `RefundReason`.

The buyer picks a reason from a list and may type a sentence. The sentence is often more
telling than the pick ("changed my mind" picked, "卡密用不了" typed), and DOMAIN.md asks that
technical problems go to support before money. The precedence, decided here:

1. An explicit reason (anything but `other`) stands, unless the text clearly says technical
   problem: a technical keyword is the strongest thing the text mentions (no duplicate
   charge, non-delivery or invalid key) and the text does not also back the explicit
   reason. So `changed_mind` with "卡密用不了" becomes `technical_issue`, while
   `invalid_key` with "卡密无效，用不了" stays `invalid_key` (the text backs the claim, and
   the supplier check decides).
2. With `other`, the text decides: the first reason in `PRIORITY` whose keywords occur.
   Concrete, checkable claims (duplicate charge, not received, invalid key) come before
   the technical complaint, which comes before matters of taste.
3. Nothing matched: the reason as given.

Matching is case-insensitive. Chinese keywords match anywhere; Latin keywords must start
at a word boundary ("error" matches "errors" but not "terror"). Pure and deterministic:
tables are tuples walked in a fixed order.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence

from domain.types import RefundReason

# Which reason wins when the text matches several (and the buyer picked `other`).
PRIORITY: tuple[RefundReason, ...] = (
    RefundReason.DUPLICATE_CHARGE,
    RefundReason.NOT_RECEIVED,
    RefundReason.INVALID_KEY,
    RefundReason.TECHNICAL_ISSUE,
    RefundReason.NOT_AS_DESCRIBED,
    RefundReason.WRONG_PURCHASE,
    RefundReason.CHANGED_MIND,
)

DEFAULT_KEYWORDS: Mapping[RefundReason, tuple[str, ...]] = {
    RefundReason.DUPLICATE_CHARGE: (
        "重复扣款",
        "扣了两次",
        "扣款两次",
        "扣了2次",
        "重复支付",
        "付了两次",
        "支付了两次",
        "多扣",
        "charged twice",
        "double charged",
        "double charge",
        "duplicate charge",
        "duplicate payment",
        "paid twice",
    ),
    RefundReason.NOT_RECEIVED: (
        "没收到",
        "未收到",
        "没有收到",
        "未到账",
        "没到账",
        "没有到账",
        "未发货",
        "没发货",
        "没有发货",
        "not received",
        "didn't receive",
        "did not receive",
        "never received",
        "never arrived",
        "not delivered",
        "never delivered",
    ),
    RefundReason.INVALID_KEY: (
        "无效",
        "已被使用",
        "已被兑换",
        "已使用过",
        "被用过",
        "卡密错误",
        "卡密不对",
        "invalid",
        "already used",
        "already redeemed",
        "wrong key",
        "key is wrong",
    ),
    RefundReason.TECHNICAL_ISSUE: (
        "用不了",
        "不能用",
        "无法使用",
        "没法用",
        "报错",
        "错误",
        "兼容",
        "无法播放",
        "播放不了",
        "不能播放",
        "打不开",
        "闪退",
        "无法登录",
        "登录不了",
        "激活失败",
        "无法激活",
        "加载失败",
        "黑屏",
        "can't use",
        "cannot use",
        "can not use",
        "unable to use",
        "error",
        "doesn't work",
        "does not work",
        "not working",
        "won't work",
        "won't play",
        "can't play",
        "cannot play",
        "crash",
        "compatib",
        "went wrong",
        "won't open",
        "can't open",
        "cannot open",
        "fails to",
    ),
    RefundReason.NOT_AS_DESCRIBED: (
        "描述不符",
        "与描述不符",
        "和描述不一样",
        "货不对板",
        "与介绍不符",
        "虚假宣传",
        "not as described",
        "different from the description",
        "misleading",
    ),
    RefundReason.WRONG_PURCHASE: (
        "买错",
        "拍错",
        "选错",
        "下错单",
        "误购",
        "wrong",
        "by mistake",
        "mistakenly",
        "accidentally",
    ),
    RefundReason.CHANGED_MIND: (
        "不想要",
        "不要了",
        "不需要了",
        "不想买",
        "用不上",
        "改主意",
        "changed my mind",
        "don't want",
        "do not want",
        "don't need",
        "no longer need",
        "no longer want",
    ),
}

_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "`": "'", "＇": "'"})


def normalise(text: str) -> str:
    """Fold width and case, unify apostrophes and collapse whitespace."""
    folded = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES).casefold()
    return " ".join(folded.split())


def _is_latin(keyword: str) -> bool:
    return keyword[:1].isascii() and keyword[:1].isalnum()


def _occurs(keyword: str, text: str) -> bool:
    needle = normalise(keyword)
    if not needle:
        return False
    if _is_latin(needle):
        return re.search(r"(?<![a-z0-9])" + re.escape(needle), text) is not None
    return needle in text


def keyword_table(
    extra: Mapping[RefundReason, Sequence[str]] | None = None,
) -> dict[RefundReason, tuple[str, ...]]:
    """The built-in keywords with `extra` (e.g. `policy.reasons.keywords`) added."""
    table = {reason: DEFAULT_KEYWORDS.get(reason, ()) for reason in PRIORITY}
    for reason in PRIORITY:
        table[reason] = (*table[reason], *(extra or {}).get(reason, ()))
    return table


def mentioned_reasons(
    text: str, *, extra_keywords: Mapping[RefundReason, Sequence[str]] | None = None
) -> list[RefundReason]:
    """Every reason whose keywords occur in `text`, in `PRIORITY` order."""
    normalised = normalise(text)
    if not normalised:
        return []
    table = keyword_table(extra_keywords)
    return [reason for reason in PRIORITY if _any_occurs(table[reason], normalised)]


def _any_occurs(keywords: Iterable[str], text: str) -> bool:
    return any(_occurs(keyword, text) for keyword in keywords)


def classify(
    reason: RefundReason,
    text: str,
    *,
    extra_keywords: Mapping[RefundReason, Sequence[str]] | None = None,
) -> RefundReason:
    """The reason the rules should act on (see the module docstring for the precedence)."""
    mentioned = mentioned_reasons(text, extra_keywords=extra_keywords)
    if reason is not RefundReason.OTHER:
        clearly_technical = bool(mentioned) and mentioned[0] is RefundReason.TECHNICAL_ISSUE
        if clearly_technical and reason not in mentioned:
            return RefundReason.TECHNICAL_ISSUE
        return reason
    return mentioned[0] if mentioned else reason
