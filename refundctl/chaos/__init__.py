"""`refundctl chaos`: automatic refunds while the worker (and once the API) is SIGKILLed at
random, then every refund checked against the gateways' own records and the books.

`run.py` puts it together; `workload.py` fires and follows the refunds through the API,
`killer.py` kills, `verify.py` checks, `diagnose.py` reads the slowest refunds' histories and
`report.py` prints the figures.
"""
