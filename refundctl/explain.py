"""`refundctl explain`: replay the decision for an order, a reason and a time, without
creating a refund, so support can answer "why" (and "what if the buyer asked tomorrow")."""

from __future__ import annotations

import argparse
import asyncio
import json

import httpx

from config.settings import Settings, get_settings
from domain.policy import load_policy
from domain.types import RefundReason
from ops.explain import ExplainRequest, Explanation, explain
from peers.from_settings import supplier_client
from store.db import make_engine, make_session_factory


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("order_id")
    parser.add_argument("--reason", default="other", choices=[r.value for r in RefundReason])
    parser.add_argument("--text", default="", help="the buyer's free-text reason")
    parser.add_argument("--at", default=None, help="RFC 3339 time to decide at (default: now)")
    parser.add_argument("--no-supplier", action="store_true", help="do not ask the supplier")
    parser.add_argument("--json", action="store_true")


async def explain_order(
    settings: Settings, req: ExplainRequest, *, ask_supplier: bool
) -> Explanation:
    engine = make_engine(settings.database_url)
    try:
        async with httpx.AsyncClient(timeout=settings.http_timeout_seconds) as http:
            supplier = supplier_client(settings, http) if ask_supplier else None
            async with make_session_factory(engine)() as session:
                return await explain(
                    session, supplier, load_policy(settings.policy_path or None), req
                )
    finally:
        await engine.dispose()


def run(args: argparse.Namespace) -> int:
    req = ExplainRequest.model_validate(
        {"order_id": args.order_id, "reason": args.reason, "reason_text": args.text, "at": args.at}
    )
    result = asyncio.run(explain_order(get_settings(), req, ask_supplier=not args.no_supplier))
    if args.json:
        print(json.dumps(result.model_dump(mode="json"), ensure_ascii=False, indent=2))
        return 0
    d = result.decision
    print(f"order {result.order_id} at {result.at.isoformat()} (policy {result.policy_version})")
    print(
        f"  outcome: {d.outcome.value}   rule: {d.rule}   refundable: {d.amount} fen -> {d.destination.value}"
    )
    print(f"  why: {d.explanation}")
    print(f"  为什么: {d.explanation_zh}")
    print(f"  risk: {result.risk.level.value} " + ", ".join(s.code for s in result.risk.signals))
    print(
        "  card keys: "
        + (", ".join(f"{k}={s.value}" for k, s in result.key_states.items()) or "none")
    )
    return 0
