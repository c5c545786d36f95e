"""`refundctl incident`: declare an incident and run it — through the HTTP API, as an admin
(a supervisor) would from a script or a terminal.

    refundctl incident declare INC-7 --by li --reason "供应商批次卡密失效" --batch B-2026-11
    refundctl incident show INC-7 --orders         # the dry run: what it would refund, skipped
    refundctl incident confirm INC-7 --by wang     # a second person: refunds start
    refundctl incident pause|resume|cancel INC-7 --by wang
    refundctl incident report INC-7 --wait         # refunded, failed, skipped, money

The API is `--api` (`REFUNDCTL_API`, default http://127.0.0.1:8000) and the key `--key`
(`REFUNDCTL_KEY`, default the admin key `refundctl dev` keeps in var/demo-keys.json). What
people may do is the incident workflow's to judge: a refusal (say, the declarer confirming
their own incident) is printed with the API's reason and exits 1."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ACTIONS = ("declare", "show", "confirm", "pause", "resume", "cancel", "report")
DEFAULT_API = "http://127.0.0.1:8000"
TERMINAL = {"completed", "cancelled", "refused"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=ACTIONS)
    parser.add_argument("incident_id")
    parser.add_argument("--api", default=os.environ.get("REFUNDCTL_API", DEFAULT_API))
    parser.add_argument("--key", default=os.environ.get("REFUNDCTL_KEY"), help="an admin key")
    parser.add_argument("--by", help="who you are (declare, confirm, pause, resume, cancel)")
    parser.add_argument("--json", action="store_true", help="print the API's JSON")
    declare = parser.add_argument_group("declare")
    declare.add_argument("--reason", help="what happened, as buyers will read it")
    declare.add_argument("--card-keys", default="", help="card key ids, comma-separated")
    declare.add_argument("--card-keys-file", type=Path, help="card key ids, one a line")
    declare.add_argument("--batch", help="a supplier batch id")
    declare.add_argument("--supplier", help="only this supplier's keys")
    declare.add_argument("--merchant")
    declare.add_argument("--sku")
    declare.add_argument("--product-type", choices=("card_key", "course", "membership", "topup"))
    declare.add_argument("--paid-from", help="RFC 3339")
    declare.add_argument("--paid-until", help="RFC 3339")
    declare.add_argument("--destination", choices=("original", "balance"), default="original")
    declare.add_argument("--refund-reason", default="other", help="the refunds' reason word")
    declare.add_argument("--rate", type=float, help="refunds started per second")
    declare.add_argument("--override-limits", action="store_true")
    declare.add_argument(
        "--wait",
        type=float,
        default=120.0,
        help="declare: seconds to wait for the dry run; report: for the incident to end "
        "(default 120; 0: do not wait)",
    )
    parser.add_argument("--note", default="")
    parser.add_argument("--orders", action="store_true", help="show: list the matched orders")
    parser.add_argument("--skipped", action="store_true", help="show: only the skipped orders")


class CliError(Exception):
    pass


def _admin_key(given: str | None) -> str:
    if given:
        return given
    from refundctl.dev import DEMO_KEYS_FILE

    try:
        key = json.loads(DEMO_KEYS_FILE.read_text(encoding="utf-8")).get("admin")
    except (OSError, ValueError):
        key = None
    if not key:
        raise CliError("no admin key: pass --key or set REFUNDCTL_KEY")
    return str(key)


class Api:
    def __init__(self, base: str, key: str) -> None:
        self.http = httpx.Client(
            base_url=base.rstrip("/"),
            headers={"Authorization": f"Bearer {key}"},
            timeout=30.0,
        )

    def call(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        try:
            r = self.http.request(method, path, json=body, params=params or None)
        except httpx.HTTPError as exc:
            raise CliError(f"cannot reach the API at {self.http.base_url}: {exc}") from exc
        if r.status_code >= 400:
            try:
                problem = r.json()
                detail = problem.get("detail") or problem.get("title")
                for e in problem.get("errors") or []:
                    if e.get("message") and e.get("message") not in str(detail):
                        detail = f"{detail}; {e.get('field')}: {e.get('message')}"
            except ValueError:
                detail = r.text
            raise CliError(f"{r.status_code}: {detail}")
        return r.json()


def declaration(args: argparse.Namespace) -> dict[str, Any]:
    if not args.by or not args.reason:
        raise CliError("declare needs --by (you) and --reason (what buyers will read)")
    keys = [k.strip() for k in args.card_keys.split(",") if k.strip()]
    if args.card_keys_file is not None:
        keys += [
            line.strip()
            for line in args.card_keys_file.read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
    selection = {
        "card_key_ids": keys,
        "batch_id": args.batch,
        "supplier": args.supplier,
        "merchant_id": args.merchant,
        "sku": args.sku,
        "product_type": args.product_type,
        "paid_from": args.paid_from,
        "paid_until": args.paid_until,
    }
    body: dict[str, Any] = {
        "incident_id": args.incident_id,
        "declared_by": args.by,
        "reason": args.reason,
        "destination": args.destination,
        "refund_reason": args.refund_reason,
        "override_limits": args.override_limits,
        "selection": {k: v for k, v in selection.items() if v not in (None, [])},
    }
    if args.rate is not None:
        body["rate_per_second"] = args.rate
    return body


def _money(amounts: dict[str, int]) -> str:
    return ", ".join(f"{a / 100:.2f} {c}" for c, a in sorted(amounts.items())) or "0"


def describe(view: dict[str, Any]) -> str:
    lines = [
        f"incident {view['incident_id']}: {view['state']}   "
        f"(declared by {view['declaration']['declared_by']}, "
        f"confirmed by {view.get('confirmed_by') or '-'}, {view['rate_per_second']}/s)",
        f"  reason   {view['declaration']['reason']}",
        f"  {view['message']}",
    ]
    summary = view.get("summary")
    if summary:
        skipped = ", ".join(f"{r} {n}" for r, n in sorted(summary["skipped"].items())) or "none"
        lines += [
            f"  dry run  {summary['matched']} matched, {summary['to_refund']} to refund "
            f"({_money(summary['amounts'])}); skipped: {skipped}",
        ]
    progress = view["progress"]
    if progress["started"] or view["state"] not in ("planning", "awaiting_confirmation"):
        statuses = ", ".join(
            f"{s} {n}" for s, n in sorted(progress["outcomes"]["by_status"].items())
        )
        lines.append(f"  started  {progress['started']} refunds; now: {statuses or 'none yet'}")
    return "\n".join(lines)


def describe_report(report: dict[str, Any]) -> str:
    skipped = ", ".join(f"{r} {n}" for r, n in sorted(report["skipped"].items())) or "none"
    return "\n".join(
        [
            f"incident {report['incident_id']}",
            f"  matched              {report['matched']}",
            f"  skipped              {sum(report['skipped'].values())} ({skipped})",
            f"  refunds started      {report['started']}",
            f"  refunded             {report['refunded']}  ({_money(report['refunded_amounts'])})",
            f"  failed               {report['failed']}",
            f"  waiting for a person {report['waiting_for_a_person']}",
            f"  still in flight      {report['in_flight']}",
            f"  commissions clawed back {_money(report['commissions_clawed_back'])}",
        ]
    )


def _wait(api: Api, incident_id: str, done: Any, seconds: float) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        view: dict[str, Any] = api.call("GET", f"/v1/incidents/{incident_id}")
        if done(view) or time.monotonic() >= deadline:
            return view
        time.sleep(1.0)


def run_action(args: argparse.Namespace, api: Api) -> str:
    iid = args.incident_id
    if args.action == "declare":
        view = api.call("POST", "/v1/incidents", declaration(args))
        if args.wait > 0:
            view = _wait(api, iid, lambda v: v["state"] != "planning", args.wait)
        return json.dumps(view, ensure_ascii=False, indent=2) if args.json else describe(view)
    if args.action == "show":
        view = api.call("GET", f"/v1/incidents/{iid}")
        if args.json:
            return json.dumps(view, ensure_ascii=False, indent=2)
        text = describe(view)
        if args.orders or args.skipped:
            text += "\n" + _orders(api, iid, skipped=True if args.skipped else None)
        return text
    if args.action == "report":
        if args.wait > 0:
            _wait(api, iid, lambda v: v["state"] in TERMINAL, args.wait)
        report = api.call("GET", f"/v1/incidents/{iid}/report")
        return (
            json.dumps(report, ensure_ascii=False, indent=2)
            if args.json
            else describe_report(report)
        )
    if not args.by:
        raise CliError(f"{args.action} needs --by (who you are)")
    body: dict[str, Any] = {"by": args.by}
    if args.action in ("confirm", "pause", "cancel") and args.note:
        body["note"] = args.note
    if args.action == "resume" and args.rate is not None:
        body["rate_per_second"] = args.rate
    view = api.call("POST", f"/v1/incidents/{iid}/{args.action}", body)
    return json.dumps(view, ensure_ascii=False, indent=2) if args.json else describe(view)


def _orders(api: Api, incident_id: str, *, skipped: bool | None) -> str:
    lines = ["  position  order                      amount  refund / skipped"]
    after = 0
    while True:
        params: dict[str, Any] = {"after": after, "limit": 500}
        if skipped is not None:
            params["skipped"] = "true"
        page = api.call("GET", f"/v1/incidents/{incident_id}/orders", **params)
        for o in page["orders"]:
            what = (
                f"skipped: {o['skip_reason']}"
                if o["skip_reason"]
                else f"{o['refund_id'] or '(not started)'} {o['refund_status'] or ''}"
            )
            lines.append(
                f"  {o['position']:>8}  {o['order_id']:<24} {o['amount'] / 100:>8.2f}  {what}"
            )
        if page["next_after"] is None:
            return "\n".join(lines)
        after = page["next_after"]


def run(args: argparse.Namespace) -> int:
    try:
        api = Api(args.api, _admin_key(args.key))
        print(run_action(args, api))
    except CliError as exc:
        print(f"refundctl incident {args.action}: {exc}", file=sys.stderr)
        return 1
    return 0
