"""What the pages say, in Chinese first and English second. Keys are the domain's words
(statuses, reasons, product types, refusal problems) or a page's own labels."""

from __future__ import annotations

from collections.abc import Mapping

from api.pages.incident_words import INCIDENT_WORDS

LANGS = ("zh", "en")

_WORDS: dict[str, tuple[str, str]] = {
    # --- refund statuses, as reviewers read them
    "status.submitted": ("已提交", "submitted"),
    "status.checking": ("核验中", "checking"),
    "status.pending_review": ("待审核", "pending review"),
    "status.approved": ("已批准", "approved"),
    "status.refunding": ("退款中", "refunding"),
    "status.refunded": ("已退款", "refunded"),
    "status.rejected": ("已拒绝", "rejected"),
    "status.redirected_to_support": ("已转客服", "redirected to support"),
    "status.cancelled": ("已撤销", "cancelled"),
    "status.failed": ("失败", "failed"),
    "status.needs_attention": ("需人工处理", "needs attention"),
    "status.replaced": ("已补发新卡密", "replaced"),
    # --- reasons
    "reason.invalid_key": ("卡密无效", "invalid key"),
    "reason.not_received": ("未收到货", "not received"),
    "reason.not_as_described": ("与描述不符", "not as described"),
    "reason.duplicate_charge": ("重复扣款", "duplicate charge"),
    "reason.wrong_purchase": ("买错了", "wrong purchase"),
    "reason.changed_mind": ("不想要了", "changed mind"),
    "reason.technical_issue": ("无法使用", "technical issue"),
    "reason.other": ("其他", "other"),
    # --- product types
    "product.card_key": ("卡密", "card key"),
    "product.course": ("课程", "course"),
    "product.membership": ("会员", "membership"),
    "product.topup": ("充值", "top-up"),
    # --- risk
    "risk.low": ("低", "low"),
    "risk.medium": ("中", "medium"),
    "risk.high": ("高", "high"),
    "risk.blocked": ("拦截", "blocked"),
    # --- key states
    "key.unredeemed": ("未使用", "unredeemed"),
    "key.redeemed": ("已使用", "redeemed"),
    "key.invalid": ("无效", "invalid"),
    "key.locked": ("已锁定", "locked"),
    "key.voided": ("已作废", "voided"),
    "key.unreachable": ("供应商未响应", "supplier unreachable"),
    "key.unknown": ("未知", "unknown"),
    # --- commissions
    "commission.frozen": ("冻结中", "frozen"),
    "commission.clawed_back": ("已追回", "clawed back"),
    "commission.released": ("已解冻", "released"),
    "commission.debt": ("已提现，记为欠款", "debt (withdrawn)"),
    "commission.earned": ("已赚取", "earned"),
    # --- refusals from the workflow, by problem
    "problem.claimed-by-another": ("其他审核员正在处理此案件", "Another reviewer holds this case"),
    "problem.already-answered": ("此案件已被其他审核员处理", "Another reviewer already answered"),
    "problem.second-reviewer-needed": (
        "双人复核：需要另一位审核员批准",
        "Four eyes: a second, different reviewer must approve",
    ),
    "problem.invalid-amount": ("金额无效", "Invalid amount"),
    "problem.not-claimed": ("您没有领取此案件", "You do not hold this case"),
    "problem.no-card-keys": ("此退款没有卡密", "This refund has no card keys"),
    "problem.wrong-status": ("案件状态已变化", "The case has moved on"),
    "problem.refund-closed": ("退款流程已结束", "The refund has finished"),
    "problem.unavailable": ("系统繁忙，请稍后重试", "Busy — try again shortly"),
    "problem.already-appealed": ("已申诉过一次", "Already appealed once"),
    "problem.not-your-refund": ("这不是您的退款", "Not your refund"),
    "problem.replacement-not-offered": ("此商品不支持补发", "No replacement key for this product"),
    # --- console labels
    "app.console": ("退款审核台", "Refund review console"),
    "nav.queue": ("审核队列", "Queue"),
    "nav.supervisor": ("主管视图", "Supervisor"),
    "nav.sign_out": ("退出", "Sign out"),
    "nav.other_lang": ("English", "中文"),
    "login.title": ("登录审核台", "Sign in to the review console"),
    "login.username": ("用户名", "Username"),
    "login.password": ("密码", "Password"),
    "login.or_key": ("或使用 API 密钥", "Or with an API key"),
    "login.key": ("API 密钥（审核员或管理员）", "API key (reviewer or admin)"),
    "login.name": ("您的名字（用于记录操作人）", "Your name (recorded with each action)"),
    "login.submit": ("登录", "Sign in"),
    "login.name_bad": (
        "请填写您的名字（字母、数字、._-@，最多64个字符）",
        "Enter your name (letters, digits, ._-@; at most 64 characters)",
    ),
    "login.failed": ("用户名或密码错误", "Wrong username or password"),
    "login.key_failed": (
        "密钥无效，或该密钥不能登录审核台（平台密钥不可登录）",
        "Unknown key, or a key that may not sign in (platform keys cannot)",
    ),
    "login.name_taken": (
        "该名字属于一个账号，请用账号密码登录",
        "That name belongs to an account: sign in with its password",
    ),
    "login.expired": ("会话已过期，请重新登录", "Your session has expired; please sign in again"),
    "login.signed_out": ("您已退出", "You are signed out"),
    "login.too_many": ("尝试次数过多，请稍后再试", "Too many attempts; try again shortly"),
    "queue.title": ("待审核退款", "Refunds awaiting review"),
    "queue.next": ("领取下一个 (n)", "Take the next (n)"),
    "queue.none_left": ("没有可领取的案件", "Nothing left to take"),
    "queue.search": ("订单号 / 退款号 / 买家ID", "order / refund / buyer id"),
    "queue.all": ("全部", "All"),
    "queue.mine": ("我的", "Mine"),
    "queue.unclaimed": ("未领取", "Unclaimed"),
    "queue.filter": ("筛选", "Filter"),
    "queue.clear": ("清除", "Clear"),
    "queue.merchant": ("商户", "Merchant"),
    "queue.product_type": ("商品类型", "Product type"),
    "queue.risk": ("风险", "Risk"),
    "queue.reason": ("原因", "Reason"),
    "queue.deadline": ("剩余时间", "Time left"),
    "queue.refund": ("退款", "Refund"),
    "queue.amount": ("金额", "Amount"),
    "queue.claimed_by": ("处理人", "Claimed by"),
    "queue.empty": ("队列为空 — 没有待审核的退款", "The queue is empty"),
    "queue.more": ("下一页", "Next page"),
    "queue.first": ("第一页", "First page"),
    "queue.total": ("共 {n} 件待审核", "{n} waiting"),
    "queue.live": ("自动刷新", "live"),
    "queue.keys": (
        "快捷键：j/k 上下移动，Enter 打开，a 批准，r 拒绝，n 领取下一个",
        "Keys: j/k move, Enter opens, a approve, r reject, n take the next",
    ),
    "badge.escalated": ("已升级", "escalated"),
    "badge.overdue": ("已超时", "overdue"),
    "badge.second": ("待复核", "2nd approval"),
    "badge.waiting_buyer": ("等待买家补充", "waiting for buyer"),
    "badge.appeal": ("申诉", "appeal"),
    "badge.expired_claim": ("领取已过期", "claim lapsed"),
    "case.back": ("← 返回队列", "← Back to the queue"),
    "case.claim": ("领取", "Claim"),
    "case.release": ("放弃领取", "Release"),
    "case.held_by_you": ("您正在处理，至 {until}", "You hold this case until {until}"),
    "case.held_by": ("{who} 正在处理，至 {until}", "{who} holds this case until {until}"),
    "case.unclaimed": ("尚无人领取", "Nobody holds this case"),
    "case.temporal": ("在 Temporal UI 中查看", "Open in the Temporal UI"),
    "case.order": ("订单与商品", "Order and items"),
    "case.item": ("商品", "Item"),
    "case.qty": ("数量", "Qty"),
    "case.price": ("单价", "Unit price"),
    "case.usage": ("使用情况", "Usage"),
    "case.revealed": ("卡密已查看", "key revealed"),
    "case.not_revealed": ("卡密未查看", "key not revealed"),
    "case.progress": ("进度 {pct}%", "{pct}% watched"),
    "case.downloaded": ("已下载", "downloaded"),
    "case.topup": ("充值：{s}", "top-up: {s}"),
    "case.keys": ("卡密状态（供应商）", "Card keys at the supplier"),
    "case.recheck": ("向供应商重新核验", "Re-check at supplier"),
    "case.decision": ("规则判定", "Rule decision"),
    "case.risk": ("风险信号", "Risk signals"),
    "case.no_signals": ("无风险信号", "No risk signals"),
    "case.weight": ("权重", "Weight"),
    "case.signal": ("信号", "Signal"),
    "case.buyer": ("买家", "Buyer"),
    "case.buyer_age": ("首单于 {when}（{days} 天前）", "first order {when} ({days} days ago)"),
    "case.buyer_orders": ("订单 {n} 笔", "{n} orders"),
    "case.buyer_refunds": ("退款 {n} 次", "{n} refunds"),
    "case.buyer_reason": ("买家说明", "Buyer's words"),
    "case.evidence": ("凭证", "Evidence"),
    "case.no_evidence": ("买家未提供凭证", "No evidence"),
    "case.timeline": ("时间线", "Timeline"),
    "case.commissions": ("受影响的分销佣金", "Commissions at stake"),
    "case.no_commissions": ("无分销佣金", "No commissions"),
    "case.actions": ("处理", "Decide"),
    "case.approve": ("批准退款 (a)", "Approve (a)"),
    "case.approve_amount": ("退款金额（元），最多 {max}", "Amount (CNY), at most {max}"),
    "case.note": ("内部备注（买家不可见）", "Internal note (not shown to the buyer)"),
    "case.reject": ("拒绝 (r)", "Reject (r)"),
    "case.waiting_second": ("您已批准，等待另一位审核员", "You approved; waiting for someone else"),
    "case.reject_template": ("拒绝理由模板", "Reason template"),
    "case.reject_text": ("补充说明（买家可见）", "More words (shown to the buyer)"),
    "case.ask": ("请买家补充凭证", "Ask the buyer for evidence"),
    "case.ask_text": ("给买家的消息", "Message to the buyer"),
    "case.reassign": ("转派给", "Reassign to"),
    "case.four_eyes": (
        "超过 {limit} 的退款需要两位审核员批准",
        "Above {limit} an approval needs two reviewers",
    ),
    "case.first_approval": (
        "{who} 已批准 {amount}，等待第二位审核员",
        "{who} approved {amount}; waiting for a second reviewer",
    ),
    "case.awaiting_buyer": ("已请买家补充：{msg}", "Asked the buyer: {msg}"),
    "case.finished": ("此退款已结束：{status}", "This refund has finished: {status}"),
    "case.changed": ("案件已更新 — 点击刷新", "The case changed — click to reload"),
    "case.appeal": ("买家申诉", "Buyer's appeal"),
    "case.decided_by": ("审核人 {who}：{note}", "Decided by {who}: {note}"),
    "flash.claimed": ("已领取", "Claimed"),
    "flash.released": ("已放弃领取", "Released"),
    "flash.approved": ("已批准 {amount}，正在退款", "Approved {amount}; the refund is being paid"),
    "flash.first_approval": (
        "已记录您的批准（{amount}）；需要另一位审核员复核",
        "Your approval ({amount}) is recorded; a second reviewer must approve",
    ),
    "flash.rejected": ("已拒绝，买家会看到理由", "Rejected; the buyer sees your reason"),
    "flash.asked": ("已发送给买家，案件等待买家补充", "Sent to the buyer; the case waits"),
    "flash.rechecked": ("已向供应商重新核验", "Re-checked at the supplier"),
    "flash.reassigned": ("已转派给 {to}", "Reassigned to {to}"),
    "flash.pending": ("已提交，流程仍在处理", "Accepted; still being carried out"),
    "flash.bad_amount": ("请输入有效金额，例如 12.50", "Enter an amount such as 12.50"),
    "flash.need_text": ("请填写内容", "Please write something"),
    "sup.title": ("主管视图", "Supervisor's view"),
    "sup.sla": (
        "今日 SLA（按时完成的审核）",
        "Today's SLA (reviews decided before their deadline)",
    ),
    "sup.decided": ("今日已处理 {n} 件，按时 {ok} 件", "{n} decided today, {ok} on time"),
    "sup.load": ("审核员负载与产出", "Reviewers' load and throughput"),
    "sup.reviewer": ("审核员", "Reviewer"),
    "sup.holding": ("正在处理", "Holding"),
    "sup.approved": ("今日批准", "Approved today"),
    "sup.rejected": ("今日拒绝", "Rejected today"),
    "sup.escalations": ("已升级（超过截止时间）", "Escalations (past their deadline)"),
    "sup.no_escalations": ("没有超时案件", "Nothing is overdue"),
    "sup.waiting": (
        "待审核 {n} 件，未领取 {u} 件，超时 {o} 件",
        "{n} waiting, {u} unclaimed, {o} overdue",
    ),
    # --- the buyer's progress page
    "b.title": ("退款进度", "Refund progress"),
    "b.head.submitted": ("我们正在核验您的订单", "We are checking your order"),
    "b.head.checking": ("我们正在核验您的订单", "We are checking your order"),
    "b.head.pending_review": ("客服正在审核您的申请", "An agent is reviewing your request"),
    "b.head.awaiting_evidence": ("需要您补充凭证", "We need more evidence from you"),
    "b.head.approved": ("退款已通过，正在退回", "Approved — your money is on its way"),
    "b.head.refunding": ("退款已通过，正在退回", "Approved — your money is on its way"),
    "b.head.needs_attention": ("退款正在处理中", "Your refund is being processed"),
    "b.head.refunded": ("退款已到账", "Your money is back"),
    "b.head.replaced": ("新卡密已补发", "A fresh card key is yours"),
    "b.head.rejected": ("很抱歉，退款申请未通过", "Sorry, this refund was not approved"),
    "b.head.cancelled": ("您已撤销退款申请", "You cancelled this refund"),
    "b.head.redirected_to_support": (
        "客服会先帮您解决问题",
        "Our support team will help you fix the problem first",
    ),
    "b.head.failed": (
        "退款暂时未能完成，客服会联系您",
        "The refund could not be completed; support will contact you",
    ),
    "b.stage.submitted": ("提交申请", "Submitted"),
    "b.stage.review": ("审核", "Review"),
    "b.stage.refunding": ("退款中", "Refunding"),
    "b.stage.done": ("已到账", "Money back"),
    "b.amount": ("退款金额", "Refund amount"),
    "b.order": ("订单号", "Order"),
    "b.refund_no": ("退款编号", "Refund number"),
    "b.reason": ("您的原因", "Your reason"),
    "b.expect.review": (
        "客服将在 {deadline} 前给出结果",
        "An agent will answer by {deadline}",
    ),
    "b.expect.balance": ("退回平台余额，即时到账", "To your platform balance, instantly"),
    "b.expect.original": (
        "原路退回{channel}，通常几分钟内到账，银行卡最长 1–5 个工作日",
        "Back to your {channel}, usually within minutes; bank cards take up to 1–5 working days",
    ),
    "b.expect.done": ("已于 {at} 退回{channel}", "Returned to your {channel} on {at}"),
    "b.expect.replaced": (
        "新卡密已于 {at} 补发，请在订单页查看；原卡密已作废",
        "Delivered on {at}: find it on your order page. The old key no longer works",
    ),
    "b.replace.title": ("换一张新卡密", "Get a replacement key"),
    "b.replace.why": (
        "不想退款？我们可以为您补发一张新卡密（退款通过时补发，不退款）。",
        "Rather have a working key than the money? We can send you a fresh one instead "
        "(when the refund would be paid).",
    ),
    "b.replace.chosen": (
        "您已选择补发新卡密，通过后将为您补发。",
        "You chose a replacement key; it comes when the refund is approved.",
    ),
    "b.replace.go": ("换一张新卡密", "Get a replacement key"),
    "b.replace.money": ("改为退款", "I'd rather have the money"),
    "b.channel.alipay": ("支付宝", "Alipay"),
    "b.channel.wechat": ("微信支付", "WeChat Pay"),
    "b.channel.balance": ("平台余额", "platform balance"),
    "b.history": ("进度记录", "What happened"),
    "b.ev.submitted": ("您提交了退款申请", "You asked for a refund"),
    "b.ev.card_key_checked": ("系统核验了卡密状态", "We checked the card key"),
    "b.ev.waiting_for_review": ("转人工审核", "Sent to an agent for review"),
    "b.ev.evidence_requested": ("客服请您补充凭证", "The agent asked you for evidence"),
    "b.ev.evidence_added": ("您补充了凭证", "You added evidence"),
    "b.ev.approved_for_payout": ("退款已通过", "Refund approved"),
    "b.ev.refund_sent": ("退款已发出", "Refund sent"),
    "b.ev.money_arrived": ("退款已到账", "Money arrived"),
    "b.ev.remedy_chosen": ("您选择了处理方式", "You chose how to settle it"),
    "b.ev.replacement_requested": ("正在为您补发新卡密", "Getting you a fresh key"),
    "b.ev.replacement_delivered": ("新卡密已补发", "Fresh key delivered"),
    "b.ev.replacement_unavailable": (
        "暂时无法补发新卡密，改为退款",
        "No fresh key to be had; refunding instead",
    ),
    "b.ev.rejected": ("退款申请未通过", "Refund not approved"),
    "b.ev.appealed": ("您提交了申诉", "You appealed"),
    "b.ev.cancelled": ("您撤销了申请", "You cancelled"),
    "b.ev.order_cancelled": ("未付款订单已取消", "The unpaid order was cancelled"),
    "b.ev.redirected_to_support": ("已转客服协助", "Passed to support"),
    "b.ev.review_escalated": ("已提醒主管加急处理", "Escalated to a supervisor"),
    "b.why": ("原因：{why}", "Why: {why}"),
    "b.asked": ("客服的留言", "The agent's message"),
    "b.add_evidence": ("补充凭证", "Add evidence"),
    "b.ev_text": ("说明", "Description"),
    "b.ev_url": ("截图或链接（可选）", "Screenshot or link (optional)"),
    "b.send": ("提交", "Send"),
    "b.cancel": ("撤销退款申请", "Cancel this refund"),
    "b.cancel_confirm": ("确定撤销吗？撤销后订单恢复正常。", "Cancel? Your order stays as it was."),
    "b.appeal": ("申诉（仅一次）", "Appeal (once)"),
    "b.appeal_text": ("请说明为什么应该退款", "Tell us why this should be refunded"),
    "b.your_evidence": ("您提交的凭证", "Your evidence"),
    "b.done.evidence": ("已收到您的凭证", "We received your evidence"),
    "b.done.cancel": ("已撤销", "Cancelled"),
    "b.done.appeal": ("申诉已提交，客服会重新审核", "Appeal sent; an agent will review again"),
    "b.done.remedy": ("已记录您的选择", "We noted your choice"),
    "b.done.notifications": ("已更新消息通知设置", "Your message settings are saved"),
    "b.notify.title": ("消息通知", "Messages about this refund"),
    "b.notify.sms": ("短信", "SMS"),
    "b.notify.email": ("邮件", "E-mail"),
    "b.notify.on": ("接收中", "on"),
    "b.notify.off": ("已关闭", "off"),
    "b.notify.stop": ("不再接收", "Stop"),
    "b.notify.resume": ("重新接收", "Turn back on"),
    "b.notify.note": (
        "关闭后不再发送短信或邮件，本页面和站内消息照常更新。",
        "Off means no more SMS or e-mail; this page and your in-app inbox still update.",
    ),
    "b.notify.bad": ("无法识别的设置", "That setting is not one we know"),
    "b.refused": ("操作未成功：{why}", "That did not work: {why}"),
    "b.live": ("页面会自动更新", "This page updates itself"),
    "b.link_expires": ("此链接有效期至 {at}", "This link works until {at}"),
    "err.title": ("出错了", "Something went wrong"),
    "err.csrf": (
        "表单已失效（缺少或错误的安全令牌），请刷新页面后重试",
        "This form has expired (missing or wrong security token); reload the page and retry",
    ),
    "err.not_found": ("找不到此退款", "No such refund"),
    "err.forbidden": ("您无权执行此操作", "You may not do this"),
    "err.internal": ("系统出错，已记录，请稍后重试", "An error occurred and was logged; try again"),
    "err.link_forged": (
        "此链接无效。请从订单页面重新打开退款进度。",
        "This link is not valid. Open the refund's progress again from your order page.",
    ),
    "err.link_expired": (
        "此链接已过期。请从订单页面重新打开退款进度。",
        "This link has expired. Open the refund's progress again from your order page.",
    ),
    "err.back": ("返回", "Back"),
    **INCIDENT_WORDS,
}


def word(key: str, lang: str, **values: object) -> str:
    """The word for `key` in `lang` ("zh" or "en"), its `{placeholders}` filled; an unknown
    key shows itself (a missing word must be visible, not crash a page)."""
    pair = _WORDS.get(key)
    text = key if pair is None else pair[0 if lang == "zh" else 1]
    return text.format(**values) if values else text


def words_for(lang: str, prefix: str) -> Mapping[str, str]:
    """Every word under a prefix, e.g. all reasons for a filter's options."""
    return {k[len(prefix) :]: word(k, lang) for k in _WORDS if k.startswith(prefix)}


def pick_language(accept_language: str | None, chosen: str | None = None) -> str:
    """Chinese by default; English when chosen or when the browser prefers it."""
    if chosen in LANGS:
        return str(chosen)
    ranked: list[tuple[float, str]] = []
    for part in (accept_language or "").split(","):
        tag, _, q = part.strip().partition(";q=")
        try:
            weight = float(q) if q else 1.0
        except ValueError:
            weight = 0.0
        if tag:
            ranked.append((weight, tag.lower()))
    for _, tag in sorted(ranked, key=lambda pair: -pair[0]):
        if tag.startswith("zh"):
            return "zh"
        if tag.startswith("en"):
            return "en"
    return "zh"
