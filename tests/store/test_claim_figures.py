"""The figures of claims against suppliers, without a database: each supplier's bad-key rate
in the operators' report, and the claim lines `refundctl reconcile` prints."""

from __future__ import annotations

from datetime import date

from ops.reconcile import Report
from refundctl.reconcile import lines
from store.report_figures import KeyClaimed, KeySold, bad_keys
from store.supplier_claims import ClaimTally, SupplierClaims


def test_bad_key_rate_is_invalid_keys_over_keys_sold_worst_first() -> None:
    sold = [KeySold("sup-a", f"A{n}") for n in range(4)] + [
        KeySold("sup-b", "B0"),
        KeySold("sup-b", "B1"),
        KeySold("sup-c", "C0"),
    ]
    claimed = [
        KeyClaimed("sup-a", "A0", "rf-1"),
        KeyClaimed("sup-a", "A1", "rf-1"),  # two keys, one refund
        KeyClaimed("sup-b", "B0", "rf-2"),
        KeyClaimed("sup-b", "X9", "rf-3"),  # a key sold outside the cohort: not counted
    ]
    rows = bad_keys(sold, claimed)
    assert [(r.supplier, r.keys_sold, r.invalid_keys, r.refunds, r.bad_key_rate) for r in rows] == [
        ("sup-a", 4, 2, 1, 0.5),
        ("sup-b", 2, 1, 1, 0.5),
        ("sup-c", 1, 0, 0, 0.0),
    ]
    assert bad_keys([], claimed) == []


def test_reconcile_prints_each_suppliers_claims() -> None:
    report = Report(
        day=date(2026, 11, 29),
        claims=[
            SupplierClaims(
                "sup-a",
                open=ClaimTally(2, 10000),
                recovered=ClaimTally(3, 14950),
                written_off=ClaimTally(1, 5000),
                duplicate_credits=1,
            ),
            SupplierClaims("sup-b", recovered=ClaimTally(1, 5000)),
        ],
    )
    printed = lines(report)
    assert (
        printed[0]
        == "reconciliation 2026-11-29: 0 payouts: match 0, mismatch 0, missing 0, pending 0, unreachable 0"
    )
    assert printed[1:] == [
        "claims sup-a            open 2 (¥100.00)  recovered 3 (¥149.50)  written off 1 (¥50.00)"
        "  duplicate credits 1 (not booked)",
        "claims sup-b            open 0 (¥0.00)  recovered 1 (¥50.00)  written off 0 (¥0.00)",
    ]
    assert report.ok  # claims are figures, not discrepancies: the exit status stays 0
