"""How long each step may take and how it is retried: the RefundWorkflow's operating limits
in one place, each with the reason it is what it is."""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy

# Database steps: retried until the database is back, however long that takes; a refund
# never gives up because the database blinked.
DB_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=10)
)
DB_TIMEOUT = timedelta(seconds=15)

# A supplier that does not answer three quick tries is "unreachable": a person decides.
SUPPLIER_QUERY_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    maximum_attempts=3,
    maximum_interval=timedelta(seconds=2),
)
SUPPLIER_QUERY_TIMEOUT = timedelta(seconds=10)
# Locking must happen before money moves: keep trying for a while, then ask a person.
SUPPLIER_LOCK_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)
)
SUPPLIER_LOCK_TIMEOUT = timedelta(seconds=30)
SUPPLIER_LOCK_BUDGET = timedelta(minutes=30)

# A fresh key instead of money (补发): a supplier that cannot reserve one within two minutes
# leaves the buyer with the refund instead (the reservation is then looked up by its
# idempotency key before anything is decided). Handing a reserved key over must be known for
# certain, like a lock: the lock's budget, then a person.
REPLACEMENT_CALL_TIMEOUT = timedelta(seconds=10)
REPLACEMENT_RESERVE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=10),
    non_retryable_error_types=["SupplierRejected"],
)
REPLACEMENT_RESERVE_BUDGET = timedelta(minutes=2)

# Money calls carry an idempotency key, so retrying them is safe; refusals are typed and
# not retried.
PAYOUT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(minutes=5),
    non_retryable_error_types=["GatewayRefused", "UnknownChannel", "UnknownPayout"],
)
PAYOUT_TIMEOUT = timedelta(seconds=30)
# How long one send or query keeps retrying transient failures (timeouts, 5xx, system
# errors) before the workflow takes the outcome as unknown and checks it by query.
PAYOUT_SEND_BUDGET = timedelta(minutes=10)
PAYOUT_QUERY_BUDGET = timedelta(minutes=2)
# The payout activities heartbeat every second: a worker that dies mid-call is noticed in
# seconds and the call retried (same idempotency key) on a live one.
PAYOUT_HEARTBEAT = timedelta(seconds=3)

# "Processing" refunds: WeChat suggests querying after 1 min, then 5/10/20/30 min; Alipay
# after >= 10 s. A notification signal cuts any wait short.
SETTLEMENT_BACKOFF = [
    timedelta(seconds=10),
    timedelta(seconds=30),
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=10),
    timedelta(minutes=20),
    timedelta(minutes=30),
]
# An answer that could not be verified is re-checked sooner: nothing is slow, something is
# wrong (a signature, a key, a clock), and a signed query may settle it at once.
VERIFY_BACKOFF = [
    timedelta(seconds=2),
    timedelta(seconds=10),
    timedelta(seconds=30),
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=10),
]

DEFAULT_APPEAL_WINDOW = timedelta(days=7)
