"""How the other processes reach a refund's workflow: the API right after it stores a refund,
and the worker's sweeper for a start that was interrupted, both start it through `starter`.
(People's requests go to the running workflow as typed Updates from `api/routers/refunds.py`.)

Imports the workflow's messages and surface (`workflows.messages`, `workflows.search`), the
store, and nothing from `activities/` or `workers/`: an import contract in pyproject.toml."""
